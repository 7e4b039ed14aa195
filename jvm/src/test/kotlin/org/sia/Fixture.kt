package org.sia

import java.nio.file.Files
import java.nio.file.Path
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.RSAPublicKey
import java.util.Base64

/**
 * A demo data set indexed once per test class, an RSA key pair made with java.security, its
 * JWKS, and a sia TOML configuration with one `[[issuers]]` trusting it (patients policy
 * `identity`: the token's `patient` claim is the DICOM Patient ID).
 */
class Fixture(val dir: Path) {
    val demo: Path = dir.resolve("demo")
    val db: Path = dir.resolve("sia.db")
    val files: List<Path> = writeDemo(demo.toString()).map { Path.of(it) }
    val keys: KeyPair = KeyPairGenerator.getInstance("RSA").apply { initialize(2048) }.generateKeyPair()
    /** A second key the issuer does not publish: its signatures must be refused. */
    val strangerKeys: KeyPair = KeyPairGenerator.getInstance("RSA").apply { initialize(2048) }.generateKeyPair()
    val config: Path = dir.resolve("sia.toml")

    init {
        val pub = keys.public as RSAPublicKey
        Files.writeString(
            dir.resolve("jwks.json"),
            """{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":"${b64(unsigned(pub.modulus.toByteArray()))}","e":"${b64(unsigned(pub.publicExponent.toByteArray()))}"}]}""",
        )
        Files.writeString(
            config,
            """
            [server]
            base_url = "http://127.0.0.1:8080"
            db = "sia.db"
            [[issuers]]
            iss = "$ISS"
            audiences = ["$AUD"]
            jwks_file = "jwks.json"
            algorithms = ["RS256"]
            leeway_seconds = 0
            [patients]
            policy = "identity"
            """.trimIndent(),
        )
        Engine.openIndex(db.toString()).use { it.index(listOf(demo.toString()), null) }
    }

    /** An RS256 JWT signed by hand (RFC 7515 §3.1 compact serialisation). */
    @JvmOverloads
    fun token(
        patient: String? = "DEMO-001",
        expiresIn: Long = 300,
        scope: String = "launch/patient patient/ImagingStudy.rs",
        signer: KeyPair = keys,
    ): String {
        val now = System.currentTimeMillis() / 1000
        val patientClaim = if (patient == null) "" else ""","patient":"$patient""""
        val header = b64("""{"alg":"RS256","typ":"JWT","kid":"k1"}""".toByteArray())
        val claims = b64(
            """{"iss":"$ISS","aud":"$AUD","sub":"u1","client_id":"app","iat":${now - 10},"exp":${now + expiresIn},"scope":"$scope"$patientClaim}"""
                .toByteArray(),
        )
        val sig = Signature.getInstance("SHA256withRSA").run {
            initSign(signer.private)
            update("$header.$claims".toByteArray())
            sign()
        }
        return "$header.$claims.${b64(sig)}"
    }

    companion object {
        const val ISS = "https://ehr.example/fhir"
        const val AUD = "http://127.0.0.1:8080/fhir"

        fun b64(b: ByteArray): String = Base64.getUrlEncoder().withoutPadding().encodeToString(b)

        /** BigInteger.toByteArray() may lead with a sign byte; JWK wants the magnitude. */
        fun unsigned(b: ByteArray): ByteArray = if (b.size > 1 && b[0] == 0.toByte()) b.copyOfRange(1, b.size) else b
    }
}
