package org.sia;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

import org.json.JSONArray;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.sia.example.JavaExample;

/** The Kotlin API as a Java host sees it: static constructors, records, exceptions. */
class JavaApiTest {
    @TempDir Path tmp;

    private static String value(JSONArray metadata, int i, String tag) {
        return metadata.getJSONObject(i).getJSONObject(tag).getJSONArray("Value").get(0).toString();
    }

    @Test
    void javaCallsTheKotlinApi() throws Exception {
        Fixture fx = new Fixture(tmp);
        AtomicLong calls = new AtomicLong();
        try (Engine engine = Engine.Companion.openIndex(fx.getDb().toString())) {
            // The fixture indexed already: a listener sees no file, the report counts them all unchanged.
            IndexReport report = engine.index(List.of(fx.getDemo().toString()), p -> {
                calls.incrementAndGet();
                return true;
            });
            assertEquals(0L, report.getIndexed());
            assertEquals(fx.getFiles().size(), report.getUnchanged());
            assertEquals(0L, calls.get());

            String bundle = engine.searchImagingStudies(List.of(), null);
            assertTrue(bundle.contains("\"resourceType\":\"Bundle\""), bundle);

            // Frames of one multi-frame instance from 8 Java threads, each equal to a single-thread read.
            String study = new org.json.JSONObject(bundle).getJSONArray("entry").getJSONObject(0)
                .getJSONObject("resource").getJSONArray("identifier").getJSONObject(0)
                .getString("value").replace("urn:oid:", "");
            JSONArray meta = new JSONArray(engine.metadata(new DicomRef(study, null, null), null));
            InstanceRef ref = new InstanceRef(study, value(meta, 0, "0020000E"), value(meta, 0, "00080018"));
            byte[] expected = engine.frames(ref, List.of(1), null, null).get(0).getBytes();
            ExecutorService pool = Executors.newFixedThreadPool(8);
            try {
                List<Future<byte[]>> futures = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    futures.add(pool.submit(() -> engine.frames(ref, List.of(1), null, null).get(0).getBytes()));
                }
                for (Future<byte[]> f : futures) {
                    assertArrayEquals(expected, f.get());
                }
            } finally {
                pool.shutdown();
            }

            SiaException.NotFound e = assertThrows(SiaException.NotFound.class,
                () -> engine.metadata(new DicomRef("1.2.3.4", null, null), null));
            assertFalse(e.getMessage().isEmpty());
            assertThrows(SiaException.class, () -> engine.frames(ref, List.of(0), null, null));
        }

        try (Engine engine = Engine.Companion.openConfigFile(fx.getConfig().toString())) {
            Decision expired = engine.authorize(fx.token("DEMO-001", -120), Access.SearchImagingStudies.INSTANCE);
            assertEquals(401, expired.getStatus());
            assertTrue(engine.authorize(fx.token(), Access.SearchImagingStudies.INSTANCE).getAllowed());
            assertThrows(SiaException.InvalidToken.class, () -> engine.searchImagingStudies(List.of(), null));
        }
    }

    @Test
    void theJavaExampleRuns() throws Exception {
        Path db = tmp.resolve("example.db");
        Path demo = tmp.resolve("demo");
        SiaKt.writeDemo(demo.toString());
        InstanceRef missing = new InstanceRef("1.2.3", "1.2.3.4", "1.2.3.4.5");
        assertEquals(0, JavaExample.run(demo.toString(), db.toString(), missing).length);
        assertTrue(Files.size(db) > 0);
    }
}
