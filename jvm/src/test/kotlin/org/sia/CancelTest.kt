package org.sia

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import java.util.concurrent.atomic.AtomicInteger

/** A listener that stops an index run leaves an index that answers and that a re-run completes. */
class CancelTest {
    private fun indexedInstances(engine: Engine): Int {
        val bundle = JSONObject(engine.searchImagingStudies(emptyList(), null))
        val entries = bundle.optJSONArray("entry") ?: return 0
        return (0 until entries.length())
            .map { entries.getJSONObject(it).getJSONObject("resource") }
            .filter { it.getString("resourceType") == "ImagingStudy" }
            .sumOf { s ->
                val uid = s.getJSONArray("identifier").getJSONObject(0).getString("value").removePrefix("urn:oid:")
                JSONArray(engine.metadata(DicomRef(uid, null, null), null)).length()
            }
    }

    private fun cancelThenComplete(dir: Path, listener: (AtomicInteger) -> IndexListener, expectInMessage: String?) {
        val demo = dir.resolve("demo").toString()
        val files = writeDemo(demo)
        Engine.openIndex(dir.resolve("c.db").toString()).use { engine ->
            val calls = AtomicInteger()
            val e = assertThrows<SiaException.Cancelled> { engine.index(listOf(demo), listener(calls)) }
            if (expectInMessage != null) {
                assertTrue(e.message!!.contains(expectInMessage), e.message)
            }
            assertEquals(5, calls.get(), "the run stops at the first refusal")
            val partial = indexedInstances(engine)
            assertTrue(partial < files.size, "cancelled before the end: $partial of ${files.size}")

            val rerun = engine.index(listOf(demo), null)
            assertEquals(files.size.toLong(), rerun.indexed + rerun.unchanged)
            assertEquals(partial.toLong(), rerun.unchanged, "what the cancelled run committed stays")
            assertEquals(files.size, indexedInstances(engine))
        }
    }

    @Test
    fun returningFalseCancels(@TempDir dir: Path) = cancelThenComplete(dir, { calls ->
        object : IndexListener {
            override fun onProgress(progress: IndexProgress): Boolean = calls.incrementAndGet() < 5
        }
    }, null)

    @Test
    fun throwingCancels(@TempDir dir: Path) = cancelThenComplete(dir, { calls ->
        object : IndexListener {
            override fun onProgress(progress: IndexProgress): Boolean {
                if (calls.incrementAndGet() == 5) throw IllegalStateException("listener gave up")
                return true
            }
        }
    }, "listener gave up")
}
