//! Referral status and substatus rules (reference §2.8).
//!
//! | current | may move to      | substatus allowed with that status |
//! |---------|------------------|------------------------------------|
//! | New     | New, Active, Closed | New: Pending, Received          |
//! | Active  | Active, Closed   | Active: Accepted                   |
//! | Closed  | terminal         | Closed: Won, Lost, Declined, Expired |

/// Why a status change is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    /// Not a ReferralStatus value.
    #[error("'{0}' is not a referral status; use New, Active or Closed")]
    UnknownStatus(String),
    /// The substatus does not belong to the status.
    #[error("substatus '{substatus}' is not allowed with status '{status}'; allowed: {allowed}")]
    SubstatusNotAllowed {
        /// Requested status.
        status: String,
        /// Requested substatus.
        substatus: String,
        /// What the status allows.
        allowed: &'static str,
    },
    /// The status cannot follow the current one.
    #[error("a referral cannot move from status '{from}' to '{to}'; {hint}")]
    NotAllowed {
        /// Current status.
        from: String,
        /// Requested status.
        to: String,
        /// Which moves are allowed.
        hint: &'static str,
    },
}

fn substatuses(status: &str) -> Option<(&'static [&'static str], &'static str)> {
    match status {
        "New" => Some((&["Pending", "Received"], "Pending, Received")),
        "Active" => Some((&["Accepted"], "Accepted")),
        "Closed" => Some((&["Won", "Lost", "Declined", "Expired"], "Won, Lost, Declined, Expired")),
        _ => None,
    }
}

/// Checks that a status/substatus pair is one the service accepts.
pub fn check_pair(status: &str, substatus: &str) -> Result<(), TransitionError> {
    let (allowed, names) =
        substatuses(status).ok_or_else(|| TransitionError::UnknownStatus(status.to_owned()))?;
    if allowed.contains(&substatus) {
        Ok(())
    } else {
        Err(TransitionError::SubstatusNotAllowed {
            status: status.to_owned(),
            substatus: substatus.to_owned(),
            allowed: names,
        })
    }
}

/// Checks a change from the current pair to a requested one.
pub fn check_transition(from: (&str, &str), to: (&str, &str)) -> Result<(), TransitionError> {
    check_pair(to.0, to.1)?;
    if from == to {
        return Ok(());
    }
    let (allowed, hint): (&[&str], &'static str) = match from.0 {
        "New" => (&["New", "Active", "Closed"], "New may move to New, Active or Closed"),
        "Active" => (&["Active", "Closed"], "Active may move to Active or Closed"),
        "Closed" => (&[], "Closed is terminal"),
        // A seeded referral with status None may be moved anywhere valid.
        _ => (&["New", "Active", "Closed"], "any valid status"),
    };
    if allowed.contains(&to.0) {
        Ok(())
    } else {
        Err(TransitionError::NotAllowed { from: from.0.to_owned(), to: to.0.to_owned(), hint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = [
            (("New", "Pending"), ("New", "Received")),
            (("New", "Pending"), ("Active", "Accepted")),
            (("New", "Received"), ("Closed", "Declined")),
            (("Active", "Accepted"), ("Closed", "Won")),
            (("Active", "Accepted"), ("Closed", "Lost")),
            (("Closed", "Won"), ("Closed", "Won")),
        ];
        for (from, to) in ok {
            assert_eq!(check_transition(from, to), Ok(()), "{from:?} -> {to:?}");
        }
        let refused = [
            (("Active", "Accepted"), ("New", "Pending")),
            (("Closed", "Won"), ("Active", "Accepted")),
            (("Closed", "Won"), ("Closed", "Lost")),
            (("New", "Pending"), ("Active", "Pending")),
            (("New", "Pending"), ("Open", "Pending")),
        ];
        for (from, to) in refused {
            assert!(check_transition(from, to).is_err(), "{from:?} -> {to:?}");
        }
    }
}
