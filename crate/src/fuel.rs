//! The fuel ledger: the one place that keeps a call's fuel books.
//!
//! wasmi meters the guest's own instructions in the store's fuel counter, which nestbox fills
//! one *slice* at a time. Everything else a call pays for — host calls, WASI calls and the
//! bytes they move — is charged here too, so `consumed` always means the same thing:
//!
//! ```text
//! consumed  = granted - fuel left in the store
//! remaining = budget - consumed
//! ```
//!
//! `granted` is all the fuel ever put into the store for this call plus every charge the
//! store's slice could not pay. The ledger lives in the store's data, so host functions (the
//! WASI layer among them) charge it from inside the interpreter, and the instance reads the
//! same numbers between steps.

/// A call's fuel books. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuelLedger {
    budget: u64,
    granted: u64,
}

impl FuelLedger {
    /// The books of a call with `budget` fuel whose store was just filled with `first_slice`.
    pub fn new(budget: u64, first_slice: u64) -> Self {
        Self {
            budget,
            granted: first_slice,
        }
    }

    /// The call's budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Fuel consumed so far, with `in_store` fuel left in the store.
    pub fn consumed(&self, in_store: u64) -> u64 {
        self.granted.saturating_sub(in_store)
    }

    /// Fuel the call may still consume, with `in_store` fuel left in the store.
    pub fn remaining(&self, in_store: u64) -> u64 {
        self.budget.saturating_sub(self.consumed(in_store))
    }

    /// The store is being refilled with `amount` (replacing the `in_store` left in it).
    pub fn refilled(&mut self, in_store: u64, amount: u64) {
        self.granted = self.consumed(in_store).saturating_add(amount);
    }

    /// Charges `cost` for work outside the guest's instructions. The store pays what it can
    /// (the returned value is the fuel to leave in it); the rest is charged to the call all
    /// the same, so the slice ends early and the budget shrinks by exactly `cost`.
    #[must_use = "the store's fuel must be set to the returned value"]
    pub fn charge(&mut self, in_store: u64, cost: u64) -> u64 {
        let paid = in_store.min(cost);
        self.granted = self.granted.saturating_add(cost - paid);
        in_store - paid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_beyond_the_slice_still_count() {
        let mut ledger = FuelLedger::new(1_000, 100);
        assert_eq!(ledger.consumed(100), 0);
        assert_eq!(ledger.consumed(40), 60);
        // 30 of the 40 left pay a cost of 30.
        assert_eq!(ledger.charge(40, 30), 10);
        assert_eq!(ledger.consumed(10), 90);
        // The slice cannot pay 50: it ends, and the budget pays the rest.
        assert_eq!(ledger.charge(10, 50), 0);
        assert_eq!(ledger.consumed(0), 140);
        assert_eq!(ledger.remaining(0), 860);
        ledger.refilled(0, 200);
        assert_eq!(ledger.consumed(200), 140);
        assert_eq!(ledger.consumed(150), 190);
        assert_eq!(ledger.remaining(150), 810);
    }
}
