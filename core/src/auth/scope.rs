//! SMART scopes, v1 and v2 (App Launch 2.x "Scopes and Launch Context").
//!
//! Parsing is strict where it matters for safety: levels and resource types are
//! case-sensitive, v2 permissions must be a non-empty in-order subset of `cruds`, and a
//! scope that cannot be parsed grants nothing (extension scopes such as `__x` or URIs
//! are ignored). v1 `read` is `rs`, `write` is `cud`, `*` is `cruds`.

/// Who the scope is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// `patient/`: the patient in the token's context.
    Patient,
    /// `user/`: what the user may see.
    User,
    /// `system/`: a backend service.
    System,
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interaction {
    /// `r`: read one resource, retrieve a study.
    Read,
    /// `s`: search.
    Search,
}

/// One parsed clinical scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The level.
    pub context: Context,
    /// The resource type, `None` for `*`.
    pub resource: Option<String>,
    /// `c r u d s`.
    pub permissions: [bool; 5],
    /// Granular `?name=value` restrictions (v2).
    pub params: Vec<(String, String)>,
}

impl Scope {
    /// Parses one scope; `None` for anything that is not a clinical scope.
    pub fn parse(s: &str) -> Option<Scope> {
        let (head, query) = match s.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (s, None),
        };
        let (level, rest) = head.split_once('/')?;
        let context = match level {
            "patient" => Context::Patient,
            "user" => Context::User,
            "system" => Context::System,
            _ => return None,
        };
        let (resource, perms) = rest.split_once('.')?;
        let resource = match resource {
            "*" => None,
            r if !r.is_empty()
                && r.starts_with(|c: char| c.is_ascii_uppercase())
                && r.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Some(r.to_string())
            }
            _ => return None,
        };
        let permissions = match perms {
            "read" => [false, true, false, false, true],
            "write" => [true, false, true, true, false],
            "*" => [true; 5],
            v2 => {
                if v2.is_empty() {
                    return None;
                }
                let mut out = [false; 5];
                let mut next = 0;
                for c in v2.chars() {
                    let i = "cruds".find(c)?;
                    if i < next {
                        return None; // out of order or repeated
                    }
                    out[i] = true;
                    next = i + 1;
                }
                out
            }
        };
        let is_v1 = matches!(perms, "read" | "write" | "*");
        let params = match query {
            None => Vec::new(),
            // Granular restrictions are a v2 feature.
            Some(_) if is_v1 => return None,
            Some(q) => {
                let mut p = Vec::new();
                for pair in q.split('&') {
                    let (k, v) = pair.split_once('=')?;
                    if k.is_empty() || v.is_empty() {
                        return None;
                    }
                    p.push((k.to_string(), v.to_string()));
                }
                p
            }
        };
        Some(Scope {
            context,
            resource,
            permissions,
            params,
        })
    }

    /// Whether the scope covers `interaction` on resources of type `resource`.
    pub fn covers(&self, resource: &str, interaction: Interaction) -> bool {
        let type_ok = self.resource.as_deref().is_none_or(|r| r == resource);
        let perm = match interaction {
            Interaction::Read => self.permissions[1],
            Interaction::Search => self.permissions[4],
        };
        type_ok && perm
    }
}

/// The clinical scopes of a token (separated by single spaces only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet {
    /// The scopes that parsed.
    pub scopes: Vec<Scope>,
}

impl ScopeSet {
    /// Parses a scope string: scope tokens separated by single spaces (RFC 6749 3.3).
    /// Any other separation (tabs, line breaks, repeated, leading or trailing spaces)
    /// is not a SMART scope string, and grants nothing.
    pub fn parse(text: &str) -> ScopeSet {
        let tokens: Vec<&str> = text.split(' ').collect();
        let well_formed = text.is_empty()
            || tokens
                .iter()
                .all(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        if !well_formed {
            return ScopeSet::default();
        }
        ScopeSet {
            scopes: tokens.into_iter().filter_map(Scope::parse).collect(),
        }
    }
}

/// A granular restriction sia can enforce on ImagingStudy: study modalities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// Only studies with a series of this modality (`modality=[system|]code`).
    Modality(String),
}

/// What scopes allow for one interaction on ImagingStudy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Nothing.
    Denied,
    /// Within the patient context; `None` unrestricted, else studies must satisfy at
    /// least one of the listed restriction sets (one per granular scope).
    Patient(Option<Vec<Vec<Restriction>>>),
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

fn restriction(name: &str, value: &str) -> Option<Restriction> {
    match name {
        "modality" => {
            let code = match value.split_once('|') {
                Some((system, code)) if system == DCM || system.is_empty() => code,
                Some(_) => return None,
                None => value,
            };
            (!code.is_empty()).then(|| Restriction::Modality(code.to_string()))
        }
        _ => None,
    }
}

/// Evaluates `scopes` for `interaction` on ImagingStudy. `system/` scopes grant nothing
/// (no backend-services policy exists yet); `patient/` and `user/` scopes are honoured
/// only within the token's patient context (there is no user-level policy to consult);
/// a granular scope with a parameter sia cannot enforce grants nothing (fails closed).
pub fn evaluate(scopes: &ScopeSet, interaction: Interaction) -> Permission {
    let mut unrestricted = false;
    let mut sets: Vec<Vec<Restriction>> = Vec::new();
    for s in &scopes.scopes {
        if s.context == Context::System || !s.covers("ImagingStudy", interaction) {
            continue;
        }
        if s.params.is_empty() {
            unrestricted = true;
            continue;
        }
        let parsed: Option<Vec<Restriction>> =
            s.params.iter().map(|(k, v)| restriction(k, v)).collect();
        if let Some(r) = parsed {
            sets.push(r);
        }
    }
    match (unrestricted, sets.is_empty()) {
        (true, _) => Permission::Patient(None),
        (false, false) => Permission::Patient(Some(sets)),
        (false, true) => Permission::Denied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(s: &str, i: Interaction) -> Permission {
        evaluate(&ScopeSet::parse(s), i)
    }

    #[test]
    fn v1_and_v2() {
        for ok in [
            "patient/ImagingStudy.read",
            "patient/*.read",
            "patient/ImagingStudy.rs",
            "patient/*.cruds",
            "user/ImagingStudy.*",
        ] {
            assert_eq!(
                perm(ok, Interaction::Search),
                Permission::Patient(None),
                "{ok}"
            );
            assert_eq!(
                perm(ok, Interaction::Read),
                Permission::Patient(None),
                "{ok}"
            );
        }
        assert_eq!(
            perm("patient/ImagingStudy.r", Interaction::Search),
            Permission::Denied
        );
        assert_eq!(
            perm("patient/ImagingStudy.r", Interaction::Read),
            Permission::Patient(None)
        );
        assert_eq!(
            perm("patient/ImagingStudy.s", Interaction::Read),
            Permission::Denied
        );
        for bad in [
            "patient/ImagingStudy.sr",
            "patient/ImagingStudy.rr",
            "Patient/ImagingStudy.rs",
            "patient/imagingstudy.rs",
            "patient/ImagingStudy.",
            "patient/ImagingStudy.write",
            "system/ImagingStudy.rs",
            "patient/Observation.rs",
            "patient/ImagingStudy.read?modality=CT",
            "__ext",
            "launch/patient",
            "",
        ] {
            assert_eq!(perm(bad, Interaction::Read), Permission::Denied, "{bad:?}");
        }
    }

    #[test]
    fn granular_scopes_restrict_and_fail_closed() {
        assert_eq!(
            perm(
                "patient/ImagingStudy.rs?modality=http://dicom.nema.org/resources/ontology/DCM|CT",
                Interaction::Search
            ),
            Permission::Patient(Some(vec![vec![Restriction::Modality("CT".into())]]))
        );
        assert_eq!(
            perm(
                "patient/ImagingStudy.rs?started=gt2020",
                Interaction::Search
            ),
            Permission::Denied
        );
        // An unrestricted scope alongside a restricted one: the union is unrestricted.
        assert_eq!(
            perm(
                "patient/ImagingStudy.rs?modality=CT patient/ImagingStudy.rs",
                Interaction::Read
            ),
            Permission::Patient(None)
        );
    }
}
