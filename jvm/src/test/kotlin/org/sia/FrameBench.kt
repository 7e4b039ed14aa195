package org.sia

import java.nio.file.Files
import kotlin.system.measureNanoTime

/**
 * Benchmark (not a test): one frame request from Kotlin next to the same call timed
 * inside Rust, in the same process and run; the difference is the binding's per-call
 * cost (JNA call, RustBuffer serialisation of the records, the ByteArray copy).
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
        repeat(3) { round ->
            // Warm-up round 0 (JIT, page cache, location cache); report rounds 1 and 2.
            val kotlinNs = measureNanoTime {
                repeat(iterations) { engine.frames(ref, listOf(1), null, null) }
            }.toDouble() / iterations
            val rustNs = engine.framesNanosInRust(ref, 1, iterations)
            if (round > 0) {
                println(
                    "frame of $size bytes: Kotlin %.2f us/call, Rust %.2f us/call, binding overhead %.2f us/call"
                        .format(kotlinNs / 1000, rustNs / 1000, (kotlinNs - rustNs) / 1000),
                )
            }
        }
    }
    dir.toFile().deleteRecursively()
}
