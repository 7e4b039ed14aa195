package org.sia

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.file.Files
import java.nio.file.Path

/**
 * Just enough DICOM reading for the tests to know, independently of the engine, what
 * bytes a native frame must have: the File Meta Information (PS3.10 §7.1, always Explicit
 * VR Little Endian) and the position of native Pixel Data (7FE0,0010).
 */
class DicomFile(val path: Path) {
    val bytes: ByteArray = Files.readAllBytes(path)
    val sopInstanceUid: String
    val transferSyntax: String

    init {
        require(String(bytes, 128, 4) == "DICM") { "$path: no DICM prefix" }
        val le = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
        var p = 132
        var sop = ""
        var ts = ""
        while (p + 8 <= bytes.size && le.getShort(p).toInt() == 2) {
            val element = le.getShort(p + 2).toInt() and 0xFFFF
            val vr = String(bytes, p + 4, 2)
            val (start, len) = if (vr in setOf("OB", "OW", "OF", "SQ", "UT", "UN")) {
                p + 12 to le.getInt(p + 8)
            } else {
                p + 8 to (le.getShort(p + 6).toInt() and 0xFFFF)
            }
            val value = String(bytes, start, len).trimEnd('\u0000', ' ')
            if (element == 0x0003) sop = value
            if (element == 0x0010) ts = value
            p = start + len
        }
        sopInstanceUid = sop
        transferSyntax = ts
    }

    /**
     * Frame [number] (1-based) of native Pixel Data of [totalLength] bytes: the first
     * (7FE0,0010) element whose declared length is [totalLength], sliced in equal frames.
     */
    fun nativeFrame(number: Int, frameLength: Int, totalLength: Int): ByteArray {
        val bigEndian = transferSyntax == BIG_ENDIAN
        val explicit = transferSyntax != IMPLICIT_LE
        val tag = if (bigEndian) byteArrayOf(0x7F, 0xE0.toByte(), 0x00, 0x10) else byteArrayOf(0xE0.toByte(), 0x7F, 0x10, 0x00)
        val order = if (bigEndian) ByteOrder.BIG_ENDIAN else ByteOrder.LITTLE_ENDIAN
        var i = 0
        while (i + 12 <= bytes.size) {
            if (bytes[i] == tag[0] && bytes[i + 1] == tag[1] && bytes[i + 2] == tag[2] && bytes[i + 3] == tag[3]) {
                val lenAt = if (explicit) i + 8 else i + 4
                val len = ByteBuffer.wrap(bytes, lenAt, 4).order(order).int
                if (len == totalLength) {
                    val start = lenAt + 4 + (number - 1) * frameLength
                    return bytes.copyOfRange(start, start + frameLength)
                }
            }
            i++
        }
        error("$path: no native Pixel Data of $totalLength bytes")
    }

    companion object {
        const val IMPLICIT_LE = "1.2.840.10008.1.2"
        const val EXPLICIT_LE = "1.2.840.10008.1.2.1"
        const val BIG_ENDIAN = "1.2.840.10008.1.2.2"
        val NATIVE = setOf(IMPLICIT_LE, EXPLICIT_LE, BIG_ENDIAN)
    }
}
