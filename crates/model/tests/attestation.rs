//! Gold image attestation: signing, verification, every tamper case, the description line and the pre-clone template checks.

use chrono::{TimeZone, Utc};
use model::attestation::{
    self, AttestationError, AttestationKey, DescriptionError, SignedStatement, Statement,
    TemplateRejection,
};
use model::{Ed25519PublicKey, Sha256Digest};

fn key(seed: u8) -> AttestationKey {
    AttestationKey::from_seed(&[seed; 32])
}

fn digest(byte: u8) -> Sha256Digest {
    Sha256Digest::from_bytes([byte; 32])
}

fn statement() -> Statement {
    Statement {
        name: "jsonrag-worker".parse().expect("valid name"),
        version: "2026.11.21-1".to_string(),
        digest: digest(0xab),
        created: Utc
            .with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
            .single()
            .expect("valid time"),
        builder: "ci@build-1 gold-images/worker/build.sh".to_string(),
    }
}

fn signed() -> SignedStatement {
    attestation::sign(statement(), &key(1)).expect("signs")
}

#[test]
fn signed_statement_verifies_with_its_trusted_key() {
    let signed = signed();
    let trusted = [key(9).public_key(), key(1).public_key()];
    let verified = attestation::verify(&signed, &trusted).expect("valid");
    assert_eq!(verified.statement(), &statement());
    assert_eq!(verified.key(), &key(1).public_key());
}

#[test]
fn changed_digest_is_refused() {
    let mut signed = signed();
    signed.statement.digest = digest(0xcd);
    let err = attestation::verify(&signed, &[key(1).public_key()]).unwrap_err();
    assert!(
        matches!(err, AttestationError::BadSignature { .. }),
        "{err}"
    );
}

#[test]
fn changed_name_version_time_or_builder_is_refused() {
    let edits: [fn(&mut Statement); 4] = [
        |s| s.name = "jsonrag-ingress".parse().expect("valid"),
        |s| s.version = "2026.11.21-2".to_string(),
        |s| s.created += chrono::Duration::seconds(1),
        |s| s.builder.push('!'),
    ];
    for edit in edits {
        let mut signed = signed();
        edit(&mut signed.statement);
        let err = attestation::verify(&signed, &[key(1).public_key()]).unwrap_err();
        assert!(
            matches!(err, AttestationError::BadSignature { .. }),
            "{err}"
        );
    }
}

#[test]
fn key_outside_the_trusted_list_is_refused() {
    let signed = signed();
    let err = attestation::verify(&signed, &[key(2).public_key()]).unwrap_err();
    assert_eq!(
        err,
        AttestationError::UntrustedKey {
            key: key(1).public_key()
        }
    );
    assert!(attestation::verify(&signed, &[]).is_err());
}

#[test]
fn swapping_in_a_trusted_key_that_did_not_sign_is_refused() {
    // An attacker who relabels the attestation with a trusted key still needs its signature.
    let mut signed = signed();
    signed.key = key(2).public_key();
    let err = attestation::verify(&signed, &[key(2).public_key()]).unwrap_err();
    assert!(
        matches!(err, AttestationError::BadSignature { .. }),
        "{err}"
    );
}

#[test]
fn flipped_signature_bit_is_refused() {
    let signed = signed();
    let mut text = serde_json::to_value(&signed).expect("serialises");
    let sig = text["signature"].as_str().expect("hex").to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    text["signature"] = flipped.into();
    let tampered: SignedStatement = serde_json::from_value(text).expect("still well-formed");
    let err = attestation::verify(&tampered, &[key(1).public_key()]).unwrap_err();
    assert!(
        matches!(err, AttestationError::BadSignature { .. }),
        "{err}"
    );
}

#[test]
fn truncated_signature_does_not_parse() {
    let json = signed().to_json_pretty();
    let sig = signed().signature.to_string();
    let truncated = json.replace(&sig, &sig[..126]);
    let err = SignedStatement::from_json(&truncated).unwrap_err();
    assert!(matches!(err, AttestationError::Malformed { .. }), "{err}");
    let line = attestation::to_description_line(&signed()).replace(&sig, &sig[..64]);
    assert!(matches!(
        attestation::parse_description(&line),
        Err(DescriptionError::Malformed { .. })
    ));
}

#[test]
fn attestation_file_round_trips() {
    let signed = signed();
    let back = SignedStatement::from_json(&signed.to_json_pretty()).expect("parses");
    assert_eq!(back, signed);
    attestation::verify(&back, &[key(1).public_key()]).expect("still valid");
}

#[test]
fn description_line_is_one_printable_line_and_round_trips() {
    let signed = signed();
    let line = attestation::to_description_line(&signed);
    assert!(line.starts_with("reborn-attestation:v1 {"));
    assert!(!line.contains('\n'));
    assert_eq!(line.trim(), line);
    assert!(line.len() < 8192, "fits PVE's description limit");
    let description = format!("Built by CI.\n{line}\n\nDo not edit.");
    assert_eq!(attestation::from_description(&description), Some(signed));
}

#[test]
fn builder_text_with_newlines_stays_on_one_line() {
    let mut s = statement();
    s.builder = "line one\nline two\u{e9}".to_string();
    let signed = attestation::sign(s, &key(1)).expect("signs");
    let line = attestation::to_description_line(&signed);
    assert_eq!(line.lines().count(), 1);
    let back = attestation::from_description(&line).expect("parses");
    attestation::verify(&back, &[key(1).public_key()]).expect("valid");
}

#[test]
fn garbage_descriptions_yield_no_statement() {
    for garbage in [
        "",
        "just notes",
        "reborn-attestation:v1",
        "reborn-attestation:v1 ",
        "reborn-attestation:v1 {not json",
        "reborn-attestation:v1 {}",
        "reborn-attestation:v2 {\"statement\":{}}",
        "reborn-attestation:v1{\"a\":1}",
    ] {
        assert_eq!(attestation::from_description(garbage), None, "{garbage:?}");
    }
}

#[test]
fn two_attestation_lines_are_ambiguous_and_rejected() {
    let line = attestation::to_description_line(&signed());
    let description = format!("{line}\n{line}");
    assert_eq!(
        attestation::parse_description(&description),
        Err(DescriptionError::Multiple { count: 2 })
    );
}

#[test]
fn replacing_the_attestation_keeps_other_notes() {
    let old = attestation::sign(
        Statement {
            version: "old".to_string(),
            ..statement()
        },
        &key(1),
    )
    .expect("signs");
    let existing = format!(
        "Owner: platform team\n{}\n",
        attestation::to_description_line(&old)
    );
    let updated = attestation::description_with_attestation(&existing, &signed());
    assert_eq!(attestation::from_description(&updated), Some(signed()));
    assert!(updated.ends_with("Owner: platform team"));
    assert_eq!(updated.lines().count(), 2);
}

#[test]
fn image_tag_names_the_version_in_pve_tag_characters() {
    let name = "jsonrag-worker".parse().expect("valid");
    let tag = attestation::image_tag(&name, "2026.11.21-1").expect("valid");
    assert_eq!(tag.as_str(), "gold-jsonrag-worker-2026.11.21-1");
    assert_eq!(statement().tag().expect("valid"), tag);
    for bad in ["", "V1", "1 2", "a/b", "x;y"] {
        assert!(attestation::image_tag(&name, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn secret_key_text_round_trips_and_debug_hides_it() {
    let k = key(7);
    let text = k.to_text();
    let back = AttestationKey::from_text(&text).expect("parses");
    assert_eq!(back.public_key(), k.public_key());
    let secret_hex = text.trim().trim_start_matches("ed25519-secret:");
    assert!(!format!("{k:?}").contains(secret_hex));
    for bad in ["", "ed25519-secret:abc", "ed25519:00", &text.to_uppercase()] {
        assert!(AttestationKey::from_text(bad).is_err(), "{bad:?}");
    }
    let err = AttestationKey::from_text(&text[..40]).unwrap_err();
    assert!(!err.to_string().contains(&secret_hex[..10]));
}

#[test]
fn public_key_is_the_manifest_form() {
    let pk = key(3).public_key();
    let text = pk.to_string();
    assert!(text.starts_with("ed25519:") && text.len() == 8 + 64);
    assert_eq!(text.parse::<Ed25519PublicKey>().expect("parses"), pk);
}

// ---- verify_template: one rejection per case the issue lists ----

fn template_description() -> String {
    format!(
        "jsonRAG worker\n{}",
        attestation::to_description_line(&signed())
    )
}

#[test]
fn attested_template_with_the_expected_digest_is_accepted() {
    let verified = attestation::verify_template(
        &template_description(),
        true,
        &digest(0xab),
        &[key(1).public_key()],
    )
    .expect("accepted");
    assert_eq!(verified.statement().digest, digest(0xab));
}

#[test]
fn a_vm_that_is_not_a_template_is_rejected() {
    let err = attestation::verify_template(
        &template_description(),
        false,
        &digest(0xab),
        &[key(1).public_key()],
    )
    .unwrap_err();
    assert_eq!(err, TemplateRejection::NotATemplate);
    assert_eq!(err.code(), "NotATemplate");
}

#[test]
fn an_unsigned_template_is_rejected() {
    let err = attestation::verify_template(
        "jsonRAG worker",
        true,
        &digest(0xab),
        &[key(1).public_key()],
    )
    .unwrap_err();
    assert_eq!(err, TemplateRejection::NoAttestation);
}

#[test]
fn a_garbled_attestation_is_rejected_as_malformed() {
    let description = template_description().replace("\"digest\"", "\"digets\"");
    let err =
        attestation::verify_template(&description, true, &digest(0xab), &[key(1).public_key()])
            .unwrap_err();
    assert_eq!(err.code(), "MalformedAttestation", "{err}");
}

#[test]
fn an_untrusted_signer_is_rejected() {
    let err = attestation::verify_template(
        &template_description(),
        true,
        &digest(0xab),
        &[key(2).public_key()],
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateRejection::UntrustedKey {
            key: key(1).public_key()
        }
    );
}

#[test]
fn an_edited_description_breaks_the_signature() {
    let mut tampered = signed();
    tampered.statement.digest = digest(0xcd);
    let description = attestation::to_description_line(&tampered);
    let err =
        attestation::verify_template(&description, true, &digest(0xcd), &[key(1).public_key()])
            .unwrap_err();
    assert_eq!(err.code(), "BadSignature", "{err}");
}

#[test]
fn a_validly_signed_other_image_is_rejected_for_its_digest() {
    let err = attestation::verify_template(
        &template_description(),
        true,
        &digest(0x11),
        &[key(1).public_key()],
    )
    .unwrap_err();
    assert_eq!(
        err,
        TemplateRejection::DigestMismatch {
            expected: digest(0x11),
            attested: digest(0xab)
        }
    );
}

#[test]
fn a_template_config_changed_since_verification_is_rejected() {
    attestation::check_config_unchanged("abc123", "abc123").expect("unchanged");
    let err = attestation::check_config_unchanged("abc123", "def456").unwrap_err();
    assert_eq!(err.code(), "TemplateConfigChanged");
    assert!(err.to_string().contains("abc123") && err.to_string().contains("def456"));
}

// ---- streamed hashing ----

#[test]
fn digest_of_known_input_matches_the_standard_vector() {
    let d = attestation::digest_reader(&b"abc"[..]).expect("hashes");
    assert_eq!(
        d.to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn streamed_digest_of_a_multi_mib_file_equals_sha256sum() {
    use std::io::Write as _;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("attestation-hash");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("image.raw");
    // 5 MiB + 12345 bytes of non-repeating content: several chunks and a partial last one.
    let len = 5 * 1024 * 1024 + 12_345;
    let mut data = Vec::with_capacity(len);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.push((x >> 24) as u8);
    }
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&data))
        .expect("write image");
    let ours =
        attestation::digest_reader(std::fs::File::open(&path).expect("open")).expect("hashes");
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .expect("sha256sum (coreutils) runs");
    assert!(out.status.success());
    let theirs = String::from_utf8(out.stdout).expect("utf-8");
    let theirs = theirs.split_whitespace().next().expect("a digest");
    assert_eq!(ours.to_string(), format!("sha256:{theirs}"));
}
