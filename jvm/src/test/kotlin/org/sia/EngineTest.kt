package org.sia

import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.Callable
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit

/** [b] with every [width]-byte word reversed (big <-> little endian). */
fun swapBytes(b: ByteArray, width: Int): ByteArray =
    if (width <= 1) b else ByteArray(b.size) { k -> b[k - k % width + (width - 1 - k % width)] }

/** One instance as its DICOM JSON metadata describes it. */
data class Instance(
    val study: String,
    val series: String,
    val sop: String,
    val patientId: String,
    val rows: Int,
    val columns: Int,
    val samplesPerPixel: Int,
    val bitsAllocated: Int,
    val frames: Int,
) {
    val ref get() = InstanceRef(study, series, sop)
    val frameLength get() = rows * columns * samplesPerPixel * bitsAllocated / 8
}

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EngineTest {
    lateinit var tmp: Path
    lateinit var fx: Fixture
    lateinit var local: Engine
    lateinit var instances: List<Instance>

    @BeforeAll
    fun setUp(@TempDir dir: Path) {
        tmp = dir
        fx = Fixture(tmp)
        local = Engine.openIndex(fx.db.toString())
        instances = studies(local, null).flatMap { instancesOf(local, it, null) }
    }

    @AfterAll
    fun tearDown() = local.close()

    private fun studies(engine: Engine, token: String?, query: List<QueryParam> = emptyList()): List<String> {
        val bundle = JSONObject(engine.searchImagingStudies(query, token))
        assertEquals("searchset", bundle.getString("type"))
        val entries = bundle.optJSONArray("entry") ?: JSONArray()
        return (0 until entries.length())
            .map { entries.getJSONObject(it).getJSONObject("resource") }
            .filter { it.getString("resourceType") == "ImagingStudy" }
            .map { it.getJSONArray("identifier").getJSONObject(0).getString("value").removePrefix("urn:oid:") }
    }

    private fun instancesOf(engine: Engine, study: String, token: String?): List<Instance> {
        val json = JSONArray(engine.metadata(DicomRef(study, null, null), token))
        fun JSONObject.v(tag: String): Any? = optJSONObject(tag)?.optJSONArray("Value")?.opt(0)
        fun JSONObject.int(tag: String, default: Int): Int = v(tag)?.toString()?.toInt() ?: default
        return (0 until json.length()).map { i ->
            val o = json.getJSONObject(i)
            Instance(
                study = o.v("0020000D") as String,
                series = o.v("0020000E") as String,
                sop = o.v("00080018") as String,
                patientId = o.v("00100020") as String,
                rows = o.int("00280010", 0),
                columns = o.int("00280011", 0),
                samplesPerPixel = o.int("00280002", 1),
                bitsAllocated = o.int("00280100", 0),
                frames = o.int("00280008", 1),
            )
        }
    }

    @Test
    fun indexesTheDemoSetAndSearchesIt() {
        assertEquals(fx.files.size, instances.size, "every demo file is an instance in the metadata")
        assertEquals(fx.files.map { DicomFile(it).sopInstanceUid }.toSet(), instances.map { it.sop }.toSet())
        val all = studies(local, null)
        assertEquals(instances.map { it.study }.toSet(), all.toSet())
        // A FHIR search parameter narrows the Bundle to one patient's studies.
        val demo1 = studies(local, null, listOf(QueryParam("patient.identifier", "SIA_DEMO|DEMO-001")))
        assertEquals(instances.filter { it.patientId == "DEMO-001" }.map { it.study }.toSet(), demo1.toSet())
        assertTrue(demo1.isNotEmpty() && demo1.size < all.size)
        // A second run reads nothing again.
        val again = local.index(listOf(fx.demo.toString()), null)
        assertEquals(0L, again.indexed)
        assertEquals(fx.files.size.toLong(), again.unchanged)
    }

    @Test
    fun seriesAndInstanceMetadataNarrowTheStudy() {
        val i = instances.first { it.frames > 1 }
        val series = JSONArray(local.metadata(DicomRef(i.study, i.series, null), null))
        assertEquals(instances.count { it.series == i.series }, series.length())
        val one = JSONArray(local.metadata(DicomRef(i.study, i.series, i.sop), null))
        assertEquals(1, one.length())
        assertEquals(i.sop, one.getJSONObject(0).getJSONObject("00080018").getJSONArray("Value").getString(0))
    }

    @Test
    fun framesFromEightThreadsMatchTheFiles() {
        val files = fx.files.map { DicomFile(it) }.associateBy { it.sopInstanceUid }
        val tasks = instances.filter { it.rows > 0 }.flatMap { i -> (1..i.frames).map { i to it } }
        val pool = Executors.newFixedThreadPool(8)
        var nativeChecked = 0
        var encapsulatedChecked = 0
        try {
            // Every frame, three times over, in an order that puts different instances
            // on different threads at once.
            val futures = (tasks + tasks.reversed() + tasks.shuffled(java.util.Random(7))).map { (i, n) ->
                pool.submit(Callable { Triple(i, n, local.frames(i.ref, listOf(n), null, null).single()) })
            }
            for (f in futures) {
                val (i, n, frame) = f.get(60, TimeUnit.SECONDS)
                assertEquals(n, frame.number)
                assertEquals(listOf(i.rows, i.columns, i.samplesPerPixel, i.bitsAllocated), listOf(frame.rows, frame.columns, frame.samplesPerPixel, frame.bitsAllocated))
                val file = files.getValue(i.sop)
                if (file.transferSyntax in DicomFile.NATIVE) {
                    // Native pixels: implicit and explicit VR little endian have the same
                    // bytes, so either label is right; big endian may come swapped to LE.
                    assertTrue(frame.transferSyntax in DicomFile.NATIVE, "${frame.transferSyntax} for ${i.sop}")
                    var expected = file.nativeFrame(n, i.frameLength, i.frameLength * i.frames)
                    if ((file.transferSyntax == DicomFile.BIG_ENDIAN) != (frame.transferSyntax == DicomFile.BIG_ENDIAN)) {
                        expected = swapBytes(expected, i.bitsAllocated / 8)
                    }
                    assertArrayEquals(expected, frame.bytes, "frame $n of ${file.path}")
                    nativeChecked++
                } else {
                    // Compressed frames, in the stored syntax: the same bytes as the engine's HTTP answer.
                    assertEquals(file.transferSyntax, frame.transferSyntax, "stored syntax of ${i.sop}")
                    val target = "/dicom-web/studies/${i.study}/series/${i.series}/instances/${i.sop}/frames/$n"
                    val r = local.handle(HttpRequest("GET", target, listOf(Header("Accept", "application/octet-stream; transfer-syntax=*"))))
                    assertEquals(200, r.status)
                    assertArrayEquals(r.body, frame.bytes)
                    assertTrue(frame.bytes.isNotEmpty())
                    encapsulatedChecked++
                }
            }
        } finally {
            pool.shutdown()
        }
        assertTrue(nativeChecked >= 3 * 10, "native frames compared with file bytes: $nativeChecked")
        assertTrue(encapsulatedChecked > 0, "compressed frames checked: $encapsulatedChecked")
    }

    @Test
    fun severalFramesInOneCall() {
        val i = instances.first { it.frames >= 3 }
        val frames = local.frames(i.ref, listOf(3, 1), null, null)
        assertEquals(listOf(3, 1), frames.map { it.number })
        val one = local.frames(i.ref, listOf(1), null, null).single()
        assertArrayEquals(one.bytes, frames[1].bytes)
    }

    @Test
    fun authorizationDecisions() {
        Engine.openConfigFile(fx.config.toString()).use { engine ->
            val own = instances.first { it.patientId == "DEMO-001" }
            val other = instances.first { it.patientId != "DEMO-001" }

            val valid = engine.authorize(fx.token(), Access.Study(own.study))
            assertEquals(Decision(true, 200, "", null), valid)
            assertTrue(engine.authorize(fx.token(), Access.Instance(own.study, own.series, own.sop)).allowed)

            val expired = engine.authorize(fx.token(expiresIn = -120), Access.Study(own.study))
            assertFalse(expired.allowed)
            assertEquals(401, expired.status)
            assertTrue(expired.wwwAuthenticate!!.contains("invalid_token"), expired.wwwAuthenticate)

            val wrongPatient = engine.authorize(fx.token(patient = "DEMO-002"), Access.Study(own.study))
            assertFalse(wrongPatient.allowed)
            assertEquals(403, wrongPatient.status)
            assertEquals(403, engine.authorize(fx.token(), Access.Series(other.study, other.series)).status)

            val forged = engine.authorize(fx.token(signer = fx.strangerKeys), Access.Study(own.study))
            assertEquals(401, forged.status)
            assertFalse(forged.allowed)

            assertEquals(401, engine.authorize(null, Access.SearchImagingStudies).status)
            assertTrue(engine.authorize(fx.token(), Access.SearchImagingStudies).allowed)

            // The same configuration as TOML text, relative paths against its folder.
            Engine.openConfigToml(Files.readString(fx.config), fx.config.parent.toString()).use { fromText ->
                assertEquals(wrongPatient, fromText.authorize(fx.token(patient = "DEMO-002"), Access.Study(own.study)))
                assertTrue(fromText.authorize(fx.token(), Access.Study(own.study)).allowed)
            }

            // Reads are filtered by the same decision.
            assertEquals(
                instances.filter { it.patientId == "DEMO-001" }.map { it.study }.toSet(),
                studies(engine, fx.token()).toSet(),
            )
        }
    }

    @Test
    fun errorsAreTheirOwnExceptionTypes() {
        Engine.openConfigFile(fx.config.toString()).use { engine ->
            val own = instances.first { it.patientId == "DEMO-001" }
            val other = instances.first { it.patientId != "DEMO-001" }
            assertThrows<SiaException.InvalidToken> { engine.metadata(DicomRef(own.study, null, null), fx.token(expiresIn = -120)) }
            assertThrows<SiaException.InvalidToken> { engine.frames(own.ref, listOf(1), null, fx.token(signer = fx.strangerKeys)) }
            assertThrows<SiaException.AccessDenied> { engine.metadata(DicomRef(other.study, null, null), fx.token()) }
        }
        val e = assertThrows<SiaException.NotFound> { local.metadata(DicomRef("1.2.3.4", null, null), null) }
        assertTrue(e is SiaException)
        val i = instances.first()
        assertThrows<SiaException.NotFound> { local.frames(i.ref, listOf(i.frames + 1), null, null) }
        assertThrows<SiaException.InvalidInput> { local.frames(i.ref, listOf(0), null, null) }
        assertThrows<SiaException.InvalidInput> { local.frames(i.ref, listOf(-1), null, null) }
        assertThrows<SiaException.InvalidInput> { local.frames(i.ref, emptyList(), null, null) }
        assertThrows<SiaException.InvalidInput> { local.metadata(DicomRef(i.study, null, i.sop), null) }
        assertThrows<SiaException.NotFound> { local.metadata(DicomRef("../etc", null, null), null) }
        assertThrows<SiaException.NotAcceptable> { local.frames(i.ref, listOf(1), "image/x-nothing", null) }
        assertThrows<SiaException.ConfigException> { Engine.openConfigFile(tmp.resolve("missing.toml").toString()) }
        Files.writeString(tmp.resolve("bad.toml"), "[server\n")
        assertThrows<SiaException.ConfigException> { Engine.openConfigFile(tmp.resolve("bad.toml").toString()) }
    }

    @Test
    fun aFileRemovedAfterIndexingIsGone(@TempDir dir: Path) {
        val own = Fixture(dir)
        Engine.openIndex(own.db.toString()).use { engine ->
            val i = studies(engine, null).flatMap { instancesOf(engine, it, null) }.first { it.rows > 0 }
            val path = own.files.first { DicomFile(it).sopInstanceUid == i.sop }
            Files.delete(path)
            assertThrows<SiaException.Gone> { engine.frames(i.ref, listOf(1), null, null) }
        }
    }
}
