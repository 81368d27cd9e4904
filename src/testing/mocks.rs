//! A case's mocks as the engine consults them: each action's answers in call order, the
//! sandbox for `sandbox: true`, and a refusal, remembered for the report, for every call
//! nothing answers, so no test reaches a real system by accident.

use std::collections::HashMap;
use std::sync::Mutex;

use indexmap::IndexMap;

use super::Mock;
use super::expect::Failure;
use crate::engine::{ActionError, MockAnswer, Mocks, OutboundCall};

/// The engine's [`Mocks`] for one case.
#[derive(Debug)]
pub(crate) struct CaseMocks {
    mocks: IndexMap<String, Mock>,
    /// Calls answered so far, by action (each attempt is a call).
    calls: Mutex<HashMap<String, usize>>,
    /// Actions that called out with no mock, and what they called, in call order.
    unmocked: Mutex<IndexMap<String, String>>,
}

impl CaseMocks {
    pub(crate) fn new(mocks: IndexMap<String, Mock>) -> Self {
        CaseMocks { mocks, calls: Mutex::default(), unmocked: Mutex::default() }
    }

    /// One failure per action that called out without a mock.
    pub(crate) fn unmocked(&self) -> Vec<Failure> {
        let unmocked = self.unmocked.lock().map(|u| u.clone()).unwrap_or_default();
        unmocked
            .into_iter()
            .map(|(action, target)| {
                Failure::new(format!(
                    "action `{action}` calls {target} but has no mock; add a mock or `sandbox: true`"
                ))
            })
            .collect()
    }

    fn next_call(&self, action: &str) -> usize {
        let Ok(mut calls) = self.calls.lock() else { return 0 };
        let count = calls.entry(action.to_string()).or_insert(0);
        *count += 1;
        *count - 1
    }
}

impl Mocks for CaseMocks {
    fn answer(&self, call: &OutboundCall<'_>) -> Option<MockAnswer> {
        match self.mocks.get(call.action) {
            Some(Mock::Sandbox) => None,
            Some(Mock::Answers(answers)) => {
                // The last answer repeats once the list is used up.
                let index = self.next_call(call.action).min(answers.len().saturating_sub(1));
                answers.get(index).cloned()
            }
            None => {
                if let Ok(mut unmocked) = self.unmocked.lock() {
                    unmocked.entry(call.action.to_string()).or_insert_with(|| call.target.to_string());
                }
                let message = format!(
                    "action `{}` calls {} but has no mock, so the test did not let it out",
                    call.action, call.target
                );
                Some(MockAnswer::Refused(ActionError::new("NotMocked", message)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::HttpResponse;
    use serde_json::{Value, json};

    fn response(status: u16) -> MockAnswer {
        MockAnswer::Response(HttpResponse { status, headers: Default::default(), body: json!(status) })
    }

    fn call<'a>(action: &'a str, inputs: &'a Value) -> OutboundCall<'a> {
        OutboundCall { action, iterations: &[], target: "salesforce.query", inputs, attempt: 1 }
    }

    #[test]
    fn answers_come_in_call_order_and_the_last_repeats() {
        let mut mocks = IndexMap::new();
        mocks.insert("Find".to_string(), Mock::Answers(vec![response(503), response(200)]));
        mocks.insert("Real".to_string(), Mock::Sandbox);
        let case = CaseMocks::new(mocks);
        let inputs = Value::Null;
        let answers: Vec<_> = (0..3).map(|_| case.answer(&call("Find", &inputs))).collect();
        assert_eq!(answers, vec![Some(response(503)), Some(response(200)), Some(response(200))]);
        assert_eq!(case.answer(&call("Real", &inputs)), None);
        assert!(case.unmocked().is_empty());
    }

    #[test]
    fn unmocked_calls_are_refused_and_reported_once() {
        let case = CaseMocks::new(IndexMap::new());
        let inputs = Value::Null;
        for _ in 0..2 {
            let answer = case.answer(&call("Create", &inputs));
            assert!(
                matches!(answer, Some(MockAnswer::Refused(ref e)) if e.code == "NotMocked"),
                "{answer:?}"
            );
        }
        let failures = case.unmocked();
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].message,
            "action `Create` calls salesforce.query but has no mock; add a mock or `sandbox: true`"
        );
    }
}
