package org.sia

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import org.sia.example.JavaExample
import org.sia.example.kotlinExample
import java.nio.file.Files
import java.nio.file.Path

/** The README's JVM examples are these test sources, verbatim, and they run. */
class ExamplesTest {
    private val sources: Path = Path.of(System.getProperty("user.dir"), "src", "test")

    @Test
    fun readmeHoldsTheExamplesVerbatim() {
        val readme = Files.readString(Path.of(System.getProperty("sia.readme")))
        for (file in listOf("kotlin/org/sia/example/KotlinExample.kt", "java/org/sia/example/JavaExample.java")) {
            val text = Files.readString(sources.resolve(file))
            assertTrue(readme.contains(text), "README.md must contain jvm/src/test/$file verbatim")
        }
    }

    @Test
    fun bothExamplesFetchTheSameFrame(@TempDir tmp: Path) {
        val demo = tmp.resolve("demo").toString()
        writeDemo(demo)
        val db = tmp.resolve("k.db").toString()
        val instance = Engine.openIndex(db).use { engine ->
            engine.index(listOf(demo), null)
            val bundle = JSONObject(engine.searchImagingStudies(emptyList(), null))
            val study = bundle.getJSONArray("entry").getJSONObject(0).getJSONObject("resource")
                .getJSONArray("identifier").getJSONObject(0).getString("value").removePrefix("urn:oid:")
            val first = JSONArray(engine.metadata(DicomRef(study, null, null), null)).getJSONObject(0)
            fun v(tag: String) = first.getJSONObject(tag).getJSONArray("Value").getString(0)
            InstanceRef(study, v("0020000E"), v("00080018"))
        }
        val fromKotlin = kotlinExample(demo, db, instance)
        val fromJava = JavaExample.run(demo, tmp.resolve("j.db").toString(), instance)
        assertTrue(fromKotlin.isNotEmpty())
        assertArrayEquals(fromKotlin, fromJava)
    }
}
