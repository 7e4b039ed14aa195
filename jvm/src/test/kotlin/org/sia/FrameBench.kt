package org.sia

import java.lang.management.ManagementFactory
import java.nio.file.Files

/**
 * Benchmark (not a test): one frame request from Kotlin next to the same call timed
 * inside Rust, in the same process and run; the difference is the binding's per-call
 * cost (JNA calls, RustBuffer serialisation of the records, the ByteArray copy).
 *
 * Each side is reported as wall-clock time and as the calling thread's CPU time. On a
 * loaded machine the wall-clock figures mostly measure the wait for a core (a thread that
 * allocates also wakes the JVM's GC threads, which compete with it); CPU time is what the
 * call itself costs.
 *
 * Run: `cd jvm && mvn -q test-compile exec:java -Dexec.classpathScope=test
 *   -Dexec.mainClass=org.sia.FrameBenchKt -Djna.library.path=target/native`
 * (with `SIA_CARGO_PROFILE=release` in the environment for a release library).
 */
fun main() {
    val dir = Files.createTempDirectory("sia-bench")
    val demo = dir.resolve("demo").toString()
    writeDemo(demo)
    Engine.openIndex(dir.resolve("sia.db").toString()).use { engine ->
        engine.index(listOf(demo), null)
        // The first single-frame native instance of the demo set (64x64, 16-bit grey).
        val studies = org.json.JSONArray(String(engine.handle(HttpRequest("GET", "/dicom-web/studies", emptyList())).body))
        val ref = (0 until studies.length()).asSequence().flatMap { s ->
            val uid = studies.getJSONObject(s).getJSONObject("0020000D").getJSONArray("Value").getString(0)
            val meta = org.json.JSONArray(engine.metadata(DicomRef(uid, null, null), null))
            (0 until meta.length()).asSequence().map { meta.getJSONObject(it) }
        }.first { it.has("00280010") && it.optJSONObject("00280100")?.getJSONArray("Value")?.getInt(0) == 16 && !it.has("00280008") }
            .let { o ->
                fun v(tag: String) = o.getJSONObject(tag).getJSONArray("Value").getString(0)
                InstanceRef(v("0020000D"), v("0020000E"), v("00080018"))
            }
        val size = engine.frames(ref, listOf(1), null, null).single().bytes.size
        val iterations = 20_000
        val threads = ManagementFactory.getThreadMXBean()
        // (wall ns, CPU ns) per call of `body`, over `iterations` calls.
        fun timed(body: () -> Unit): Pair<Double, Double> {
            val cpu0 = threads.currentThreadCpuTime
            val wall0 = System.nanoTime()
            body()
            val wall = (System.nanoTime() - wall0).toDouble() / iterations
            return wall to (threads.currentThreadCpuTime - cpu0).toDouble() / iterations
        }
        repeat(4) { round ->
            // Warm-up round 0 (JIT, page cache, location cache); report rounds 1 to 3.
            val (kotlinWall, kotlinCpu) = timed { repeat(iterations) { engine.frames(ref, listOf(1), null, null) } }
            var rustWall = 0.0
            val (_, rustCpu) = timed { rustWall = engine.framesNanosInRust(ref, 1, iterations) }
            val copy = ByteArray(size)
            val source = ByteArray(size)
            val (copyWall, _) = timed {
                repeat(iterations) {
                    source[0] = it.toByte()
                    System.arraycopy(source, 0, copy, 0, size)
                }
            }
            check(copy[0] == (iterations - 1).toByte())
            if (round > 0) {
                println(
                    ("frame of $size bytes: Kotlin %.2f us/call (CPU %.2f), Rust %.2f us/call (CPU %.2f), " +
                        "binding overhead %.2f us/call (CPU %.2f); one ByteArray copy of the frame %.3f us")
                        .format(
                            kotlinWall / 1000, kotlinCpu / 1000, rustWall / 1000, rustCpu / 1000,
                            (kotlinWall - rustWall) / 1000, (kotlinCpu - rustCpu) / 1000, copyWall / 1000,
                        ),
                )
            }
        }
    }
    dir.toFile().deleteRecursively()
}
