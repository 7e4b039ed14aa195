#!/usr/bin/env bash
# Sourced by scripts/test-cpp: an HS256 issuer, its configuration and index with
# Patient/123 linked to DEMO-001, and tokens made with openssl (exported for the consumer).
# Needs: $work, $target, $work/demo.
auth="$work/auth"
mkdir -p "$auth"
secret="$(openssl rand -hex 16)"
printf '%s' "$secret" > "$auth/hs.key"
iss="https://ehr.example.test"
aud="http://127.0.0.1:8080/fhir"
cat > "$auth/sia.toml" <<TOML
[server]
base_url = "http://127.0.0.1:8080"
db = "auth.db"
[[issuers]]
iss = "$iss"
audiences = ["$aud"]
hs256_secret_file = "hs.key"
algorithms = ["HS256"]
[patients]
policy = "links"
TOML
"$target/debug/sia" index --db "$auth/auth.db" "$work/demo" >/dev/null
"$target/debug/sia" link --db "$auth/auth.db" --patient 123 --identifier DEMO-001 --issuer SIA_DEMO >/dev/null 2>&1
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jwt() { # PATIENT SCOPE EXP
  local h p s
  h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  p=$(printf '{"iss":"%s","aud":"%s","exp":%s,"scope":"%s","patient":"%s"}' "$iss" "$aud" "$3" "$2" "$1" | b64url)
  s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -mac HMAC -macopt "key:$secret" -binary | b64url)
  printf '%s.%s.%s' "$h" "$p" "$s"
}
now=$(date +%s)
export SIA_CPP_TOKEN="$(jwt 123 patient/ImagingStudy.rs $((now + 3600)))"
export SIA_CPP_TOKEN_OTHER="$(jwt 456 patient/ImagingStudy.rs $((now + 3600)))"
export SIA_CPP_TOKEN_EXPIRED="$(jwt 123 patient/ImagingStudy.rs $((now - 3600)))"
export SIA_CPP_TOKEN_READ_ONLY="$(jwt 123 patient/ImagingStudy.r $((now + 3600)))"
