//! The publications of many roles at once: one `credentials` rewrite covers every publication
//! numbered before it, and a rewrite soon after the last one waits for its turn.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::tests::{config, creds, name, role, EXPIRY};
use super::writer::CREDENTIALS_PACE;
use super::*;

#[test]
fn one_credentials_rewrite_covers_every_publication_numbered_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b"), role("c")];
    let state = State::new(&roles, None);
    let outputs = Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    // Three roles succeed together; all are numbered before the first write runs (as
    // `publish` numbers them before they wait for a blocking thread).
    let numbers: Vec<u64> = ["a", "b", "c"]
        .iter()
        .map(|r| {
            let letter = r.to_uppercase().chars().next().unwrap();
            state.update(&name(r), |s| s.credentials = Some(Arc::new(creds(letter))));
            outputs.number_publication()
        })
        .collect();
    assert!(outputs
        .publish_numbered(&state, &name("a"), now, numbers[0])
        .is_empty());
    let ini = std::fs::read_to_string(tmp.path().join("credentials")).unwrap();
    assert!(ini.contains("[a]") && ini.contains("[b]") && ini.contains("[c]"));
    // b's and c's writes find their sections written: `credentials` is not rewritten.
    std::fs::write(tmp.path().join("credentials"), "left alone").unwrap();
    for (r, number) in [("b", numbers[1]), ("c", numbers[2])] {
        assert!(outputs
            .publish_numbered(&state, &name(r), now, number)
            .is_empty());
        assert!(tmp.path().join(format!("{r}.json")).exists());
    }
    let ini = std::fs::read_to_string(tmp.path().join("credentials")).unwrap();
    assert_eq!(ini, "left alone");
    // A publication numbered after that write rewrites it.
    let number = outputs.number_publication();
    assert!(outputs
        .publish_numbered(&state, &name("a"), now, number)
        .is_empty());
    let ini = std::fs::read_to_string(tmp.path().join("credentials")).unwrap();
    assert!(ini.contains("[a]"));
}

#[tokio::test(start_paused = true)]
async fn a_credentials_rewrite_soon_after_the_last_waits_and_then_covers_every_role_that_came() {
    let tmp = tempfile::tempdir().unwrap();
    let roles = [role("a"), role("b"), role("c")];
    let state = State::new(&roles, None);
    let outputs = Arc::new(Outputs::new(&config(tmp.path()), "us-east-1", &roles, &[]));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(EXPIRY - 60);
    let credentials = || std::fs::read_to_string(tmp.path().join("credentials")).unwrap();
    state.update(&name("a"), |s| s.credentials = Some(Arc::new(creds('A'))));
    assert!(outputs.publish(&state, &name("a"), now).await.is_empty());
    assert!(
        credentials().contains("[a]"),
        "the first rewrite is not paced"
    );

    // As if that rewrite had taken 40 ms: the next waits 9 times as long after it.
    let turn = Instant::now() + Duration::from_millis(40) * CREDENTIALS_PACE;
    outputs.lock().credentials_not_before = Some(turn);
    let publish = |r: &str, letter: char| {
        state.update(&name(r), |s| s.credentials = Some(Arc::new(creds(letter))));
        let (outputs, state, role) = (outputs.clone(), state.clone(), name(r));
        tokio::spawn(async move { outputs.publish(&state, &role, now).await })
    };
    let (b, c) = (publish("b", 'B'), publish("c", 'C'));
    tokio::time::sleep_until(turn - Duration::from_millis(1)).await;
    assert!(tmp.path().join("b.json").exists() && tmp.path().join("c.env").exists());
    assert!(
        !credentials().contains("[b]") && !b.is_finished() && !c.is_finished(),
        "their own files are written at once, `credentials` waits for its turn"
    );
    assert!(b.await.unwrap().is_empty() && c.await.unwrap().is_empty());
    assert!(Instant::now() >= turn);
    let ini = credentials();
    assert!(ini.contains("[a]") && ini.contains("[b]") && ini.contains("[c]"));
    assert_eq!(outputs.lock().credentials_upto, 3, "covers all three");
}
