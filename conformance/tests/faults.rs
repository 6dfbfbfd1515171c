//! The suite over a key that things happen to (token-sim's fault injection). Every run ends,
//! each check that met the fault says what it met, and the checks after a power loss judge
//! the key again.

use conformance::{run, Card, Report, Secrets, Selection, Verdict};
use proto::clock::FixedClock;
use token_sim::faults::Fault;
use token_sim::{KeySpec, VirtualKey};

fn judge(fault: Fault) -> Report {
    let mut k =
        VirtualKey::in_memory(&KeySpec { seed: Some(9), ..KeySpec::default() }, &FixedClock(1_790_000_000)).unwrap();
    let faults = k.faults();
    faults.arm(fault);
    let mut card = Card::new(Box::new(k), Secrets::factory()).with_power(Box::new(faults));
    run(&mut card, &Selection { throwaway: true, ..Selection::default() }, &mut |_, _, _| {})
}

fn failures(r: &Report) -> Vec<(&str, &str)> {
    r.outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::Fail(why) => Some((o.id, why.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_power_loss_fails_the_check_it_hit_and_the_rest_judge_the_key_again() {
    // Write 12 is well inside the checks (the probes write fewer).
    let r = judge(Fault::PowerLossAtWrite(12));
    let failed = failures(&r);
    assert_eq!(failed.len(), 1, "{}", r.table());
    assert!(failed[0].1.contains("was reset during the command"), "{failed:?}");
    let last = r.outcomes.last().unwrap();
    assert_eq!(last.verdict, Verdict::Pass, "{}", r.table());
}

#[test]
fn a_storage_error_fails_every_check_from_the_first_write_on_with_the_memory_failure() {
    // Nothing is written before a check needs the PIN (it is found out then, not up front):
    // the checks before that read only, and pass; from the first write the key answers 6581
    // to everything, and every check says so.
    let r = judge(Fault::StorageError);
    assert!(!r.conforms());
    let first = r.outcomes.iter().position(|o| matches!(o.verdict, Verdict::Fail(_))).expect("a failure");
    for o in &r.outcomes[first..] {
        let why = o.verdict.detail();
        assert!(
            matches!(o.verdict, Verdict::Fail(_) | Verdict::Skipped(_)) && why.contains("6581"),
            "{}: {why}\n{}",
            o.id,
            r.table()
        );
    }
    assert!(failures(&r).len() > r.outcomes.len() / 2, "{}", r.table());
}

#[test]
fn a_key_pulled_out_ends_the_run_with_the_rest_not_run() {
    let r = judge(Fault::RemovedMidCommand(60));
    let failed = failures(&r);
    assert_eq!(failed.len(), 1, "{}", r.table());
    assert!(failed[0].1.contains("removed"), "{failed:?}");
    let after: Vec<_> = r.outcomes.iter().skip_while(|o| o.id != failed[0].0).skip(1).collect();
    assert!(!after.is_empty());
    for o in after {
        let why = o.verdict.detail();
        assert!(
            matches!(o.verdict, Verdict::Skipped(_)) && why.contains(&format!("removed during {}", failed[0].0)),
            "{}: {why}",
            o.id
        );
    }
    assert!(!r.conforms());
}

#[test]
fn a_slow_key_passes_as_it_would_fast() {
    let r = judge(Fault::Slow(std::time::Duration::from_millis(1)));
    assert!(r.conforms(), "{}", r.table());
}
