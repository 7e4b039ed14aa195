package org.sia

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.atomic.AtomicLong

/**
 * `close()` while other threads are in calls (the documented behaviour): no crash, every
 * call either finishes with a correct answer or is refused with the generated bindings'
 * `IllegalStateException` ("object has already been destroyed"); once no call is
 * running any more, every call is refused; `close()` again is a no-op; the index stays
 * whole. (uniffi counts calls in flight: while one runs, a call that starts after
 * `close()` is still served, so the threads here stop on their own a little after it.)
 */
class CloseTest {
    /** A native single-frame instance of the demo set (64x64, 16-bit grey). */
    private val root = "2.25.228146457203842916711418316839742735"
    private val ref = InstanceRef("$root.1", "$root.1.1", "$root.1.1.1")

    @Test
    fun closeWhileCallsRunLetsThemFinishOrRefusesThem(@TempDir dir: Path) {
        val demo = dir.resolve("demo").toString()
        val files = writeDemo(demo)
        val db = dir.resolve("close.db").toString()
        val expected = Engine.openIndex(db).use { engine ->
            engine.index(listOf(demo), null)
            engine.frames(ref, listOf(1), null, null).single().bytes
        }
        assertEquals(8192, expected.size)
        // Close at a different moment of the calls each time: right away, then later.
        for (delayMs in listOf(0L, 2L, 15L, 60L)) {
            val engine = Engine.openIndex(db)
            val threads = 8
            val started = CountDownLatch(threads)
            val finished = AtomicInteger()
            val refused = AtomicInteger()
            val closedAt = AtomicLong() // System.nanoTime() of close(), 0 before
            val failures = ConcurrentLinkedQueue<Throwable>()
            val workers = (0 until threads).map { t ->
                Thread {
                    started.countDown()
                    // Until refused, or for 200 ms after close() (uniffi serves calls
                    // that start while others are still running).
                    while (closedAt.get() == 0L || System.nanoTime() - closedAt.get() < 200_000_000L) {
                        try {
                            // Several kinds of call, so close() meets each of them in flight.
                            when (t) {
                                0, 1, 4, 5 -> assertArrayEquals(expected, engine.frames(ref, listOf(1), null, null).single().bytes)
                                2, 6 -> assertTrue(engine.metadata(DicomRef(ref.study, null, null), null).startsWith("["))
                                3 -> assertEquals(files.size.toLong(), engine.index(listOf(demo), null).unchanged)
                                else -> assertEquals(200, engine.handle(HttpRequest("GET", "/dicom-web/studies", emptyList())).status)
                            }
                            finished.incrementAndGet()
                        } catch (e: IllegalStateException) {
                            assertTrue(e.message!!.contains("destroyed"), e.message)
                            refused.incrementAndGet()
                            break
                        } catch (e: Throwable) {
                            failures.add(e)
                            break
                        }
                    }
                }.apply { start() }
            }
            assertTrue(started.await(30, TimeUnit.SECONDS))
            Thread.sleep(delayMs)
            engine.close()
            closedAt.set(System.nanoTime())
            workers.forEach { it.join(120_000) }
            assertTrue(workers.none { it.isAlive }, "every call returned after close()")
            assertTrue(failures.isEmpty(), "only correct answers or the closed error: ${failures.firstOrNull()}")
            assertTrue(finished.get() > 0, "calls ran before close()")
            assertThrows<IllegalStateException> { engine.frames(ref, listOf(1), null, null) }
            assertThrows<IllegalStateException> { engine.handle(HttpRequest("GET", "/dicom-web/studies", emptyList())) }
            engine.close() // again: a no-op
        }
        // The engines are gone (their index connections closed); the index is whole.
        Engine.openIndex(db).use { engine ->
            assertEquals(files.size.toLong(), engine.index(listOf(demo), null).unchanged)
            assertArrayEquals(expected, engine.frames(ref, listOf(1), null, null).single().bytes)
        }
    }
}
