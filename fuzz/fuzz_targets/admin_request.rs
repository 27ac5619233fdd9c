//! The AdminServer's request handling short of hyper: a request target as
//! hyper parses it (`Uri`), routed by `route_admin_request` under the
//! default `admin.commandURL`, the command name looked up, and the query of
//! `set_trace_mask` parsed. The first byte picks the method (even: GET).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::server::admin::{command_primary_name, route_admin_request, set_trace_mask, AdminRoute};
use zoocore_fuzz::selector;

const COMMAND_URL: &str = "/commands";

fuzz_target!(|data: &[u8]| {
    let (method, target) = selector(data);
    let Ok(uri) = hyper::Uri::try_from(target) else { return };
    match route_admin_request(COMMAND_URL, method % 2 == 0, uri.path(), uri.query()) {
        AdminRoute::NotFound => assert!(!uri.path().starts_with(COMMAND_URL) || uri.path().len() > COMMAND_URL.len()),
        AdminRoute::MethodNotAllowed => assert!(method % 2 == 1),
        AdminRoute::CommandLinks => {}
        AdminRoute::Command { name, query } => {
            assert!(uri.path().ends_with(name));
            if let Some(primary) = command_primary_name(name) {
                assert_eq!(command_primary_name(primary), Some(primary));
                if primary == "set_trace_mask" {
                    let _ = set_trace_mask(query);
                }
            } else {
                // Unknown names are answered too (200 with an error), so
                // the trace-mask parser sees every query as well.
                let _ = set_trace_mask(query);
            }
        }
    }
});
