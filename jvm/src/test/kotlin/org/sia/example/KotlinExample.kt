package org.sia.example

import org.sia.Engine
import org.sia.IndexListener
import org.sia.IndexProgress
import org.sia.InstanceRef
import org.sia.QueryParam
import org.sia.SiaException

/** Indexes a folder, searches one patient's studies and fetches one frame. */
fun kotlinExample(dicomFolder: String, db: String, instance: InstanceRef): ByteArray {
    Engine.openIndex(db).use { engine -> // or Engine.openConfigFile("sia.toml")
        val report = engine.index(listOf(dicomFolder), object : IndexListener {
            override fun onProgress(progress: IndexProgress): Boolean {
                println("${progress.filesDone}/${progress.filesFound} ${progress.current}")
                return true // false cancels the run (SiaException.Cancelled)
            }
        })
        println("indexed ${report.indexed}, unchanged ${report.unchanged}, skipped ${report.skipped.size}")

        // A FHIR searchset Bundle (JSON text); pass a SMART token instead of null
        // when the configuration has [[issuers]].
        val bundle = engine.searchImagingStudies(
            listOf(QueryParam("patient.identifier", "SIA_DEMO|DEMO-001")), null)
        println(bundle.length)

        return try {
            val frame = engine.frames(instance, listOf(1), null, null).single()
            println("${frame.bytes.size} bytes in ${frame.transferSyntax}")
            frame.bytes
        } catch (e: SiaException.NotFound) {
            ByteArray(0)
        }
    }
}
