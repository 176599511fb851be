//! Shared by the integration tests: writing out what a connection queued.

use std::io::IoSlice;

use wsx_proto::Connection;

/// Everything `conn` has queued, as one buffer (and marks it written).
pub fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 16];
        let n = conn.output_chunks(&mut slices);
        let mut written = 0;
        for s in &slices[..n] {
            out.extend_from_slice(s);
            written += s.len();
        }
        conn.advance_output(written);
    }
    out
}
