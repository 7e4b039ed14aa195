#!/usr/bin/env python3
"""Token checks side by side: sia (in-process, release build) and PyJWT, on the same
keys (core/benches/fixtures, test-only) and the same claims, on one core.

    python bench/auth_bench.py

Prints medians: an uncached RS256, PS256 and ES256 verification with the claim checks, sia's
cached decisions per second, and sia's ImagingStudy search for a patient with 10
studies through Engine::handle.
"""

import json
import os
import pathlib
import statistics
import subprocess
import time

import jwt

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "core/benches/fixtures"
ISS, AUD = "https://ehr.example.org", "https://ehr.example.org/fhir"


def pyjwt_us(alg, pem, n=2000):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "exp": now + 3600, "iat": now, "sub": "u", "client_id": "app",
              "scope": "patient/ImagingStudy.rs", "patient": "123"}
    private = pem.read_bytes()
    token = jwt.encode(claims, private, algorithm=alg)
    from cryptography.hazmat.primitives import serialization
    public = serialization.load_pem_private_key(private, None).public_key()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        jwt.decode(token, public, algorithms=[alg], audience=AUD, issuer=ISS,
                   options={"require": ["exp", "iss", "aud"]})
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples)


def main():
    if not os.environ.get("SIA_BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sia", "--example", "auth_latency"], cwd=ROOT, check=True)
    sia = json.loads(subprocess.run(["taskset", "-c", "0", str(ROOT / "target/release/examples/auth_latency")],
                                    check=True, capture_output=True, text=True).stdout)
    rs, es = pyjwt_us("RS256", FIX / "bench-rsa.pem"), pyjwt_us("ES256", FIX / "bench-ec.pem")
    ps = pyjwt_us("PS256", FIX / "bench-rsa.pem")
    print(f"{'median':46} {'sia':>10} {'PyJWT':>10} {'ratio':>7}")
    print(f"{'RS256 verify + claims (uncached)':46} {sia['rs256_us']:>8.1f}us {rs:>8.1f}us {rs / sia['rs256_us']:>6.2f}x")
    print(f"{'PS256 verify + claims (uncached)':46} {sia['ps256_us']:>8.1f}us {ps:>8.1f}us {ps / sia['ps256_us']:>6.2f}x")
    print(f"{'ES256 verify + claims (uncached)':46} {sia['es256_us']:>8.1f}us {es:>8.1f}us {es / sia['es256_us']:>6.2f}x")
    print(f"{'cached decisions per second (one core)':46} {sia['cached_per_s']:>10,.0f}")
    print(f"{'ImagingStudy?patient= (10 studies) via handle':46} {sia['search_us']:>8.1f}us")


if __name__ == "__main__":
    main()
