//! The suite judged: a clean virtual key passes every must-check, a plain one runs to the end,
//! and keys made defective (a transport that changes the card's answers the way a faulty card
//! would) are caught by the check that names the defect.

use conformance::{catalog, run, Card, Report, Secrets, Selection, Severity, Verdict};
use proto::clock::FixedClock;
use proto::transport::{Transport, TransportError};
use token_sim::piv::state::Flavor;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};

const NOW: u64 = 1_790_000_000;

fn key(flavor: Flavor) -> VirtualKey {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca::Ca::create(dir.path(), "CN=Test CA", 3650, &FixedClock(NOW - 100)).unwrap();
    let mut vk =
        VirtualKey::in_memory(&KeySpec { seed: Some(3), flavor, ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    vk.provision(Scenario::Provisioned, Some(&ca), "CN=Zhang San,O=Example", &FixedClock(NOW)).unwrap();
    vk
}

fn judge(t: Box<dyn Transport>, selection: &Selection) -> Report {
    let mut card = Card::new(t, Secrets::factory());
    run(&mut card, selection, &mut |_, _, _| {})
}

fn verdict<'a>(r: &'a Report, id: &str) -> &'a Verdict {
    &r.outcomes.iter().find(|o| o.id == id).unwrap_or_else(|| panic!("{id} not run")).verdict
}

#[test]
fn the_catalog_has_stable_unique_ids_and_clauses() {
    let all = catalog();
    assert!(all.len() >= 80, "{}", all.len());
    for c in &all {
        assert!(c.id.starts_with("PIV-") && c.id.len() <= 18, "{}", c.id);
        assert!(!c.clause.is_empty() && !c.title.is_empty(), "{}", c.id);
        assert_eq!(all.iter().filter(|d| d.id == c.id).count(), 1, "{} twice", c.id);
    }
}

#[test]
fn a_clean_virtual_key_passes_every_must_check() {
    let r = judge(Box::new(key(Flavor::Yubico { version: [5, 4, 3] })), &Selection::default());
    let failed: Vec<_> = r.outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Fail(_))).collect();
    assert!(failed.is_empty(), "{}", r.table());
    assert!(r.count("pass") >= 35, "{}", r.table());
    assert_eq!(r.key.version.as_deref(), Some("5.4.3"));
    // Every check shows what the key answered.
    assert!(r.outcomes.iter().filter(|o| !o.destructive).all(|o| !o.status_words.is_empty()), "{}", r.table());
    assert!(r.conforms(), "destructive checks left out do not make it incomplete: {}", r.table());
}

#[test]
fn on_a_key_made_for_the_run_the_destructive_checks_run_and_pass() {
    let r = judge(
        Box::new(key(Flavor::Yubico { version: [5, 4, 3] })),
        &Selection { throwaway: true, ..Selection::default() },
    );
    assert!(r.conforms(), "{}", r.table());
    for id in ["PIV-GEN-001", "PIV-GEN-002", "PIV-GEN-003", "PIV-GEN-004", "PIV-RESET-002", "PIV-PUT-002"] {
        assert_eq!(verdict(&r, id), &Verdict::Pass, "{id}: {}", r.table());
    }
    // Without leave, a key someone owns keeps its keys.
    let r = judge(Box::new(key(Flavor::Yubico { version: [5, 4, 3] })), &Selection::default());
    assert!(matches!(verdict(&r, "PIV-GEN-002"), Verdict::Skipped(why) if why.contains("--destructive")));
}

#[test]
fn a_card_accepting_a_wrong_old_pin_is_caught() {
    let r = judge(
        defective(|apdu, answer| if apdu.len() == 21 && apdu[1] == 0x24 { vec![0x90, 0x00] } else { answer }),
        &Selection { only: vec!["pin-mgmt".into()], ..Selection::default() },
    );
    assert!(failed_musts(&r).contains(&"PIV-CHANGE-001"), "{}", r.table());
    assert!(verdict(&r, "PIV-CHANGE-001").detail().contains("accepted a wrong old PIN"));
}

#[test]
fn a_plain_card_runs_to_the_end_with_the_yubico_extensions_not_supported() {
    let r = judge(Box::new(key(Flavor::Plain)), &Selection::default());
    assert!(r.must_failures().is_empty(), "{}", r.table());
    for id in ["PIV-YK-001", "PIV-YK-002", "PIV-YK-003", "PIV-YK-004"] {
        assert!(matches!(verdict(&r, id), Verdict::NotSupported(_)), "{id}: {}", r.table());
    }
    assert!(r.key.version.is_none() && r.key.serial.is_none());
}

#[test]
fn only_and_skip_choose_by_id_prefix_and_family_and_typos_are_named() {
    let only = Selection { only: vec!["verify".into(), "PIV-SELECT-00*".into()], ..Selection::default() };
    let r = judge(Box::new(key(Flavor::Yubico { version: [5, 4, 3] })), &only);
    assert_eq!(r.outcomes.len(), 13 + 7);
    let skip = Selection { skip: vec!["PIV-VERIFY-002".into()], only: vec!["verify".into()], ..Selection::default() };
    let r = judge(Box::new(key(Flavor::Yubico { version: [5, 4, 3] })), &skip);
    assert!(r.outcomes.iter().all(|o| o.id != "PIV-VERIFY-002") && r.outcomes.len() == 12);
    let typo = Selection { only: vec!["PIV-VERFY-*".into()], ..Selection::default() };
    assert_eq!(typo.unknown(), vec!["PIV-VERFY-*".to_string()]);
}

/// A card whose answers `fault` may change: the defect under test.
struct Defective<F: FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send> {
    card: VirtualKey,
    fault: F,
}

impl<F: FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send> Transport for Defective<F> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let answer = self.card.transmit(apdu)?;
        Ok((self.fault)(apdu, answer))
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.card.reset()
    }
    fn is_present(&mut self) -> bool {
        true
    }
    fn name(&self) -> String {
        "defective".into()
    }
}

fn defective(fault: impl FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send + 'static) -> Box<dyn Transport> {
    Box::new(Defective { card: key(Flavor::Yubico { version: [5, 4, 3] }), fault })
}

fn failed_musts(r: &Report) -> Vec<&'static str> {
    r.must_failures().iter().map(|o| o.id).collect()
}

#[test]
fn a_card_accepting_any_management_key_answer_is_caught() {
    // The second step of 9B authentication (a template with a witness in it) always "works".
    let r = judge(
        defective(|apdu, answer| {
            let second_step = apdu.len() > 8 && apdu[1] == 0x87 && apdu[3] == 0x9B && apdu[7] == 0x80 && apdu[8] > 0;
            if second_step {
                vec![0x90, 0x00]
            } else {
                answer
            }
        }),
        &Selection { only: vec!["mgmt-auth".into()], ..Selection::default() },
    );
    let failed = failed_musts(&r);
    for id in ["PIV-MGMT-002", "PIV-MGMT-003", "PIV-MGMT-004", "PIV-MGMT-005"] {
        assert!(failed.contains(&id), "{id} catches it: {}", r.table());
    }
    assert!(verdict(&r, "PIV-MGMT-002").detail().contains("wrong management key was accepted"));
}

#[test]
fn a_card_that_does_not_count_wrong_pins_is_caught() {
    // A wrong PIN answers "3 left" and the count stays: the retry counter never moves.
    let r = judge(
        defective(|apdu, answer| {
            let verify_with_data = apdu.len() == 13 && apdu[1] == 0x20;
            let status = apdu.len() == 4 && apdu[1] == 0x20 && answer[answer.len() - 2] == 0x63;
            if (verify_with_data && answer[answer.len() - 2] == 0x63) || status {
                vec![0x63, 0xC3]
            } else {
                answer
            }
        }),
        &Selection { only: vec!["verify".into()], ..Selection::default() },
    );
    assert!(failed_musts(&r).contains(&"PIV-VERIFY-002"), "{}", r.table());
    assert!(verdict(&r, "PIV-VERIFY-002").detail().contains("the key said 3 left"), "{}", r.table());
}

#[test]
fn a_card_ignoring_get_data_parameters_is_caught() {
    // GET DATA answers whatever P1-P2 say.
    let mut inner = key(Flavor::Yubico { version: [5, 4, 3] });
    let t = Box::new(Defective {
        card: key(Flavor::Yubico { version: [5, 4, 3] }),
        fault: move |apdu: &[u8], answer: Vec<u8>| {
            if apdu.len() > 4 && apdu[1] == 0xCB && (apdu[2], apdu[3]) != (0x3F, 0xFF) {
                let mut fixed = apdu.to_vec();
                fixed[2] = 0x3F;
                fixed[3] = 0xFF;
                inner.transmit(&fixed).unwrap_or(answer)
            } else {
                answer
            }
        },
    });
    let r = judge(t, &Selection { only: vec!["objects".into()], ..Selection::default() });
    // A should-check: SP 800-73-4 names no status word for other P1-P2 values.
    let o = r.outcomes.iter().find(|o| o.id == "PIV-OBJ-005").unwrap();
    assert!(matches!(o.verdict, Verdict::Fail(_)) && o.severity == Severity::Should, "{}", r.table());
}

#[test]
fn severity_decides_conformance() {
    // A should-check failing leaves the key conformant; a must-check failing does not.
    let r = judge(
        defective(|apdu, answer| if apdu[0] == 0xA0 { vec![0x6D, 0x00] } else { answer }),
        &Selection { only: vec!["robustness".into()], ..Selection::default() },
    );
    let o = r.outcomes.iter().find(|o| o.id == "PIV-ROBUST-002").unwrap();
    assert_eq!(o.severity, Severity::Should);
    assert!(matches!(o.verdict, Verdict::Fail(_)) && r.must_failures().is_empty(), "{}", r.table());
}

#[test]
fn the_reports_say_the_same_in_json_junit_and_html() {
    // A card that takes an unknown instruction: ROBUST-001 fails, and ROBUST-006 (which sends
    // it among the commands that must be refused); both shoulds. And a 9A that signs without
    // the PIN: SIGN-002, a must.
    let r = judge(
        defective(|apdu, answer| match apdu[1] {
            0x02 => vec![0x90, 0x00],
            0x87 if apdu[3] == 0x9A && answer.ends_with(&[0x69, 0x82]) => vec![0x7C, 0x00, 0x90, 0x00],
            _ => answer,
        }),
        &Selection { only: vec!["robustness".into(), "select".into(), "PIV-SIGN-002".into()], ..Selection::default() },
    );
    let junit = r.junit();
    assert!(junit.contains(&format!("tests=\"{}\" failures=\"3\"", r.outcomes.len())), "{junit}");
    assert!(
        junit.contains("<failure message=\"[should] an instruction PIV does not define (INS 02): answered 9000"),
        "{junit}"
    );
    assert!(junit.contains("<failure message=\"[must] no signature (82) in the answer"), "{junit}");
    let html = r.html("2026-12-03 00:00:00 UTC");
    for o in &r.outcomes {
        assert!(html.contains(o.id), "{} in the page", o.id);
    }
    assert!(html.contains("1 must-checks failed") && html.contains("class=\"fail\""));
    assert!(!html.contains("<script"), "a page without scripts");
    let json = r.to_json();
    assert_eq!(json["summary"]["must_failed"], 1);
    assert_eq!(json["outcomes"].as_array().unwrap().len(), r.outcomes.len());
}

#[test]
fn destructive_checks_report_how_the_key_was_put_back() {
    let r = judge(
        Box::new(key(Flavor::Yubico { version: [5, 4, 3] })),
        &Selection { throwaway: true, ..Selection::default() },
    );
    let restoration = |id: &str| r.outcomes.iter().find(|o| o.id == id).unwrap().restoration.clone().unwrap();
    let lockout = restoration("PIV-VERIFY-009");
    assert!(lockout.verified && lockout.lost.is_empty(), "{lockout:?}");
    let generated = restoration("PIV-GEN-002");
    assert!(generated.verified && generated.lost.iter().any(|l| l.contains("95")), "{generated:?}");
    assert!(r.outcomes.iter().filter(|o| !o.destructive).all(|o| o.restoration.is_none()));
}

#[test]
fn an_object_a_check_changed_is_written_back_and_verified() {
    let mut card = Card::new(Box::new(key(Flavor::Yubico { version: [5, 4, 3] })), Secrets::factory());
    card.pin_usable().unwrap();
    let before = conformance::restore::snapshot(&mut card);
    let chuid = card.piv().read_object(0x5FC102).unwrap().unwrap();
    card.authenticate().unwrap();
    card.piv().write_object(0x5FC102, &[0x30, 0x01, 0x00]).unwrap();
    let r = conformance::restore::restore(&mut card, &before);
    assert_eq!(r.restored, vec!["CHUID".to_string()], "{r:?}");
    assert!(r.verified && r.keys_compared, "{r:?}");
    assert_eq!(card.piv().read_object(0x5FC102).unwrap().unwrap(), chuid);
}

#[test]
fn a_plain_aes_128_key_without_its_management_key_is_skipped_not_failed() {
    let aes = [0x42u8; 16];
    let spec = KeySpec {
        seed: Some(4),
        flavor: Flavor::Plain,
        mgmt_alg: proto::piv::Algorithm::Aes128,
        mgmt_key: aes[..].into(),
        ..KeySpec::default()
    };
    let fresh = || Box::new(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap());
    let only = Selection { only: vec!["mgmt-auth".into(), "put-data".into()], ..Selection::default() };
    // The default key fits neither of the card's algorithms: the card answers 6A86 to 3DES and
    // AES-192, which says nothing against the card.
    let r = judge(fresh(), &only);
    assert!(r.must_failures().is_empty(), "{}", r.table());
    assert!(
        matches!(verdict(&r, "PIV-MGMT-001"), Verdict::Skipped(why) if why.contains("--mgmt-key")),
        "{}",
        r.table()
    );
    assert!(matches!(verdict(&r, "PIV-PUT-001"), Verdict::Skipped(_)), "{}", r.table());
    assert!(!r.conforms(), "skipped must-checks leave the run incomplete");
    // With its key, every one of them runs and passes.
    let secrets =
        Secrets { mgmt: host_driver::MgmtKey::new(proto::piv::Algorithm::Aes128, &aes).unwrap(), ..Secrets::factory() };
    let r = run(&mut Card::new(fresh(), secrets), &only, &mut |_, _, _| {});
    assert!(r.conforms(), "{}", r.table());
    assert_eq!(verdict(&r, "PIV-MGMT-004"), &Verdict::Pass);
}

/// Optional features a card may lack are "not supported", not failed musts: the optional
/// object 5FC120 the PUT DATA checks write to (6A82), and P-256 for GENERATE (6A80; SP 800-78
/// allows a card with RSA-2048 alone). (The fault changes the card's answer after it took the
/// command, so each check gets a fresh key.)
#[test]
fn a_card_without_the_scratch_object_or_p256_is_not_failed() {
    for only in ["PIV-PUT-001", "PIV-PUT-002", "PIV-GEN-001", "PIV-GEN-002", "PIV-GEN-003"] {
        let r = judge(
            defective(|apdu, answer| match apdu.get(1) {
                Some(0xDB) if apdu.windows(3).any(|w| w == [0x5F, 0xC1, 0x20]) => vec![0x6A, 0x82],
                Some(0x47) => vec![0x6A, 0x80],
                _ => answer,
            }),
            &Selection { only: vec![only.into()], throwaway: true, ..Selection::default() },
        );
        let o = &r.outcomes[0];
        assert!(matches!(o.verdict, Verdict::NotSupported(_)), "{}: {:?}\n{}", o.id, o.verdict, r.table());
    }
}
