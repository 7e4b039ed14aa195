package org.sia.example;

import java.util.List;

import org.sia.Engine;
import org.sia.Frame;
import org.sia.IndexReport;
import org.sia.InstanceRef;
import org.sia.QueryParam;
import org.sia.SiaException;

/** The same from Java: indexes a folder, searches, fetches one frame. */
public final class JavaExample {
    public static byte[] run(String dicomFolder, String db, InstanceRef instance) throws SiaException {
        try (Engine engine = Engine.Companion.openIndex(db)) {
            IndexReport report = engine.index(List.of(dicomFolder), progress -> {
                System.out.println(progress.getFilesDone() + " " + progress.getCurrent());
                return true; // false cancels the run
            });
            System.out.println("indexed " + report.getIndexed());

            String bundle = engine.searchImagingStudies(
                List.of(new QueryParam("patient.identifier", "SIA_DEMO|DEMO-001")), null);
            System.out.println(bundle.length());

            try {
                Frame frame = engine.frames(instance, List.of(1), null, null).get(0);
                return frame.getBytes();
            } catch (SiaException.NotFound e) {
                return new byte[0];
            }
        }
    }

    private JavaExample() {}
}
