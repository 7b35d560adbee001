//! The native tier's cost model: what each operator costs and where a basic block ends.
//!
//! The weights are the interpreter's (wasmi 2.0's default `OperatorCost` and
//! `CustomFuelCosts`), so a unit of fuel means the same work in both tiers:
//!
//! | what | fuel |
//! | --- | --- |
//! | `nop`, `drop`, `block`, `loop`, `else`, `end`, `unreachable`, `return` | 0 |
//! | every other operator (calls, `br*`, loads, stores, arithmetic, …) | 1 |
//! | `memory.fill` / `memory.copy` / `memory.init` | + 1 per 64 bytes of their length |
//! | `memory.grow` | + 1,024 per page asked for (64 KiB / 64), at most for the pages the memory limit allows |
//! | `table.fill` / `table.copy` / `table.init` / `table.grow` | + 1 per 16 elements (4-byte references / 64) |
//! | a function's entry | + 1 per 8 declared locals (zeroed on every call: 8 bytes / 64) |
//!
//! What differs is *where* it is charged. The interpreter charges a function entry or a `loop`
//! up front for the code up to its end; the native tier charges each basic block's static cost
//! at the block's start and the dynamic part of a bulk operator just before it runs. So a
//! native-tier count is the number of executed operators (free ones left out) plus the dynamic
//! charges plus the locals charge (when a call ends in a trap the host counts the whole slice it
//! ran on: the count since the guest last wrote it back is lost) — while the interpreter's count
//! also pays for code it skipped. The locals charge
//! is the native tier's own (the interpreter does not meter zeroing locals, wasmi #2038).

use wasmparser::Operator;

use crate::error::{Error, ErrorCode};

/// How an operator shapes the control flow, for cutting a body into basic blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Falls through to the next operator.
    Plain,
    /// `block`: opens a label; the code after it is entered only by falling through.
    Block,
    /// `loop`: opens a label whose branch target is its start, so a block starts after it.
    Loop,
    /// `if`: opens a label; the then-branch starts a block.
    If,
    /// `else`: the else-branch starts a block.
    Else,
    /// `end`: closes a label (or the function); the code after it is a branch target.
    End,
    /// `br`, `br_table`, `unreachable`: never falls through.
    Jump,
    /// `br_if`: the fall-through path starts a block.
    BrIf,
    /// `return`, `return_call`, `return_call_indirect`: leaves the function (the call-depth
    /// counter is decremented before it).
    Exit,
}

impl Flow {
    /// Whether a new basic block starts right after this operator (the function's own final
    /// `end` is handled by the caller).
    pub(crate) fn ends_block(self) -> bool {
        !matches!(self, Flow::Plain | Flow::Block)
    }
}

/// The length-proportional part of a bulk operator, read from its last (i32) operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dynamic {
    /// A length in bytes: 1 fuel per 64.
    Bytes,
    /// A number of 64 KiB pages: 1,024 fuel each.
    Pages,
    /// A number of table elements: 1 fuel per 16.
    Elements,
}

impl Dynamic {
    /// `fuel = len >> shift` (right) or `len << shift` (left).
    pub(crate) fn shift(self) -> (bool, i64) {
        match self {
            Dynamic::Bytes => (false, 6),
            Dynamic::Pages => (true, 10),
            Dynamic::Elements => (false, 4),
        }
    }
}

/// What the instrumentation needs to know of one operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpCost {
    /// Its effect on the control flow.
    pub(crate) flow: Flow,
    /// Its static fuel.
    pub(crate) fuel: u64,
    /// Its dynamic fuel, when it is a bulk operator.
    pub(crate) dynamic: Option<Dynamic>,
}

/// Fuel for `locals` declared locals at a function's entry.
pub(crate) fn locals_fuel(locals: u64) -> u64 {
    locals / 8
}

/// The cost and control-flow class of `op`.
///
/// # Errors
///
/// `INVALID_MODULE` for control-flow operators of proposals the tier does not meter
/// (exceptions, typed function references, GC, stack switching): the validator's feature set
/// already refuses them; this keeps the metering from ever mis-reading one if that set grows.
pub(crate) fn classify(op: &Operator<'_>) -> Result<OpCost, Error> {
    use Operator as O;
    let plain = |fuel| OpCost {
        flow: Flow::Plain,
        fuel,
        dynamic: None,
    };
    let control = |flow, fuel| OpCost {
        flow,
        fuel,
        dynamic: None,
    };
    let bulk = |dynamic| OpCost {
        flow: Flow::Plain,
        fuel: 1,
        dynamic: Some(dynamic),
    };
    Ok(match op {
        O::Nop | O::Drop => plain(0),
        O::Block { .. } => control(Flow::Block, 0),
        O::Loop { .. } => control(Flow::Loop, 0),
        O::If { .. } => control(Flow::If, 1),
        O::Else => control(Flow::Else, 0),
        O::End => control(Flow::End, 0),
        O::Unreachable => control(Flow::Jump, 0),
        O::Br { .. } | O::BrTable { .. } => control(Flow::Jump, 1),
        O::BrIf { .. } => control(Flow::BrIf, 1),
        O::Return => control(Flow::Exit, 0),
        O::ReturnCall { .. } | O::ReturnCallIndirect { .. } => control(Flow::Exit, 1),
        O::MemoryFill { .. } | O::MemoryCopy { .. } | O::MemoryInit { .. } => bulk(Dynamic::Bytes),
        O::MemoryGrow { .. } => bulk(Dynamic::Pages),
        O::TableFill { .. } | O::TableCopy { .. } | O::TableInit { .. } | O::TableGrow { .. } => {
            bulk(Dynamic::Elements)
        }
        O::Try { .. }
        | O::Catch { .. }
        | O::CatchAll
        | O::Throw { .. }
        | O::ThrowRef
        | O::Rethrow { .. }
        | O::Delegate { .. }
        | O::TryTable { .. }
        | O::BrOnNull { .. }
        | O::BrOnNonNull { .. }
        | O::BrOnCast { .. }
        | O::BrOnCastFail { .. }
        | O::CallRef { .. }
        | O::ReturnCallRef { .. }
        | O::Resume { .. }
        | O::ResumeThrow { .. }
        | O::Suspend { .. }
        | O::Switch { .. }
        | O::ContNew { .. }
        | O::ContBind { .. } => {
            return Err(Error::new(
                ErrorCode::InvalidModule,
                format!("invalid module: the native tier does not meter {op:?}"),
            ));
        }
        _ => plain(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_the_interpreters() {
        assert_eq!(classify(&Operator::Nop).expect("nop").fuel, 0);
        assert_eq!(classify(&Operator::I32Add).expect("add").fuel, 1);
        assert_eq!(
            classify(&Operator::Call { function_index: 0 })
                .expect("call")
                .fuel,
            1
        );
        let fill = classify(&Operator::MemoryFill { mem: 0 }).expect("fill");
        assert_eq!((fill.fuel, fill.dynamic), (1, Some(Dynamic::Bytes)));
        assert_eq!(locals_fuel(7), 0);
        assert_eq!(locals_fuel(10_000), 1_250);
    }

    #[test]
    fn block_boundaries() {
        assert!(!Flow::Block.ends_block());
        assert!(!Flow::Plain.ends_block());
        for flow in [
            Flow::Loop,
            Flow::If,
            Flow::Else,
            Flow::End,
            Flow::Jump,
            Flow::BrIf,
            Flow::Exit,
        ] {
            assert!(flow.ends_block(), "{flow:?}");
        }
    }

    #[test]
    fn unmetered_control_flow_is_refused() {
        let e = classify(&Operator::CatchAll).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::InvalidModule);
    }
}
