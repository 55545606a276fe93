//! Pagination cursors: text -> every list's cursor parser (`GET /v1/blocks`,
//! `/v1/blocks/{id}/transactions`, `/v1/mempool`, `/v1/accounts/{address}/transactions`) as the
//! handlers run it, including the `invalid_cursor` message; and the path parameters (hash,
//! address, block id), which take the same kind of input. A cursor the list would issue for
//! the position parsed must parse to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_rpc::fuzzing::{parse_cursors, parse_path_params};

fuzz_target!(|data: &[u8]| {
    // Query strings reach the handlers percent-decoded into a String (lossily).
    let text = String::from_utf8_lossy(data);
    let cursors = parse_cursors(&text);
    if let Ok(Some(canonical)) = &cursors.number {
        assert_eq!(
            &parse_cursors(canonical).number,
            &Ok(Some(canonical.clone()))
        );
    }
    if let Ok(Some(canonical)) = &cursors.mempool {
        assert_eq!(
            &parse_cursors(canonical).mempool,
            &Ok(Some(canonical.clone()))
        );
    }
    if let Ok(Some(canonical)) = &cursors.history {
        assert_eq!(
            &parse_cursors(canonical).history,
            &Ok(Some(canonical.clone()))
        );
    }
    let _ = parse_path_params(&text);
});
