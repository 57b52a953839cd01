//! A small classic-BPF assembler with symbolic labels.
//!
//! Code generation emits operations whose jump targets are labels; the
//! assembler lays them out and resolves offsets. Classic BPF can only jump
//! forward, and a conditional jump reaches at most 255 instructions ahead, so
//! a conditional jump whose target is farther away is rewritten as
//! `jcc k, 0, 1; ja true_target; ja false_target` (`ja` has a 32-bit offset).
//! Layout is repeated until no jump needs rewriting (rewriting only grows the
//! program, so this terminates).

use seccompiler::sock_filter;

// Opcodes (linux/bpf_common.h). Only the ones the generator uses; they are
// also exactly the ones the tests' interpreter accepts.
/// `A = *(u32 *)(seccomp_data + k)`: BPF_LD | BPF_W | BPF_ABS
pub(super) const LD_W_ABS: u16 = 0x20;
/// `A &= k`: BPF_ALU | BPF_AND | BPF_K
pub(super) const ALU_AND_K: u16 = 0x04 | 0x50;
/// `pc += k`
pub(super) const JMP_JA: u16 = 0x05;
/// `pc += (A == k) ? jt : jf`
pub(super) const JMP_JEQ_K: u16 = 0x05 | 0x10;
/// `pc += (A > k) ? jt : jf` (unsigned)
pub(super) const JMP_JGT_K: u16 = 0x05 | 0x20;
/// `pc += (A >= k) ? jt : jf` (unsigned)
pub(super) const JMP_JGE_K: u16 = 0x05 | 0x30;
/// `return k`
pub(super) const RET_K: u16 = 0x06;

/// A position in the program, bound with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

/// Where a conditional jump goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// The instruction right after the jump.
    Next,
    /// A label (which must be bound later in the program).
    To(Label),
}

/// Unsigned comparison of the accumulator with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Load(u32),
    And(u32),
    Jump {
        cmp: Cmp,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ret(u32),
    Bind(Label),
}

/// Program under construction.
#[derive(Default)]
pub(super) struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// A fresh, unbound label.
    pub(super) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Binds `label` to the next instruction emitted.
    pub(super) fn bind(&mut self, label: Label) {
        self.ops.push(Op::Bind(label));
    }

    /// Loads the 32-bit word at byte `offset` of `struct seccomp_data`.
    pub(super) fn load(&mut self, offset: u32) {
        self.ops.push(Op::Load(offset));
    }

    pub(super) fn and(&mut self, k: u32) {
        self.ops.push(Op::And(k));
    }

    pub(super) fn jump(&mut self, cmp: Cmp, k: u32, jt: Target, jf: Target) {
        self.ops.push(Op::Jump { cmp, k, jt, jf });
    }

    pub(super) fn ret(&mut self, k: u32) {
        self.ops.push(Op::Ret(k));
    }

    /// Resolves labels and returns the instructions.
    ///
    /// Panics on a label that is unbound, bound twice or bound before a jump
    /// to it: those are bugs of the generator, not of the input.
    pub(super) fn assemble(self) -> Vec<sock_filter> {
        let mut long = vec![false; self.ops.len()];
        loop {
            let (starts, label_at, len) = self.layout(&long);
            let mut grew = false;
            for (i, op) in self.ops.iter().enumerate() {
                if let Op::Jump { jt, jf, .. } = *op {
                    if long[i] {
                        continue;
                    }
                    let here = starts[i];
                    let too_far = |t: Target| match t {
                        Target::Next => false,
                        Target::To(l) => forward(here, label_at[l.0]) > 255,
                    };
                    if too_far(jt) || too_far(jf) {
                        long[i] = true;
                        grew = true;
                    }
                }
            }
            if !grew {
                return self.emit(&long, &starts, &label_at, len);
            }
        }
    }

    /// Start position of every op, position of every label, total length.
    fn layout(&self, long: &[bool]) -> (Vec<usize>, Vec<usize>, usize) {
        let mut starts = Vec::with_capacity(self.ops.len());
        let mut label_at = vec![usize::MAX; self.labels];
        let mut pos = 0;
        for (i, op) in self.ops.iter().enumerate() {
            starts.push(pos);
            match op {
                Op::Bind(l) => {
                    assert_eq!(label_at[l.0], usize::MAX, "label bound twice");
                    label_at[l.0] = pos;
                }
                Op::Jump { .. } if long[i] => pos += 3,
                _ => pos += 1,
            }
        }
        assert!(label_at.iter().all(|&p| p != usize::MAX), "unbound label");
        (starts, label_at, pos)
    }

    fn emit(
        &self,
        long: &[bool],
        starts: &[usize],
        label_at: &[usize],
        len: usize,
    ) -> Vec<sock_filter> {
        let mut out = Vec::with_capacity(len);
        for (i, op) in self.ops.iter().enumerate() {
            let here = starts[i];
            match *op {
                Op::Bind(_) => {}
                Op::Load(off) => out.push(stmt(LD_W_ABS, off)),
                Op::And(k) => out.push(stmt(ALU_AND_K, k)),
                Op::Ret(k) => out.push(stmt(RET_K, k)),
                Op::Jump { cmp, k, jt, jf } => {
                    let code = match cmp {
                        Cmp::Eq => JMP_JEQ_K,
                        Cmp::Gt => JMP_JGT_K,
                        Cmp::Ge => JMP_JGE_K,
                    };
                    if long[i] {
                        // jcc k, 0, 1; ja T; ja F   (Next = the insn after the trio)
                        let resolve = |t: Target| match t {
                            Target::Next => here + 3,
                            Target::To(l) => label_at[l.0],
                        };
                        out.push(jump(code, k, 0, 1));
                        out.push(stmt(JMP_JA, offset32(here + 1, resolve(jt))));
                        out.push(stmt(JMP_JA, offset32(here + 2, resolve(jf))));
                    } else {
                        let off = |t: Target| match t {
                            Target::Next => 0,
                            // Checked <= 255 by `assemble`.
                            Target::To(l) => forward(here, label_at[l.0]) as u8,
                        };
                        out.push(jump(code, k, off(jt), off(jf)));
                    }
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        out
    }
}

/// Offset of a jump at `from` to `to` (relative to the instruction after).
fn forward(from: usize, to: usize) -> usize {
    to.checked_sub(from + 1).expect("BPF jumps must go forward")
}

fn offset32(from: usize, to: usize) -> u32 {
    u32::try_from(forward(from, to)).expect("jump offset fits in 32 bits")
}

pub(super) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(super) fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_offset_zero_and_labels_resolve() {
        let mut a = Asm::new();
        let l = a.label();
        a.load(0);
        a.jump(Cmp::Eq, 7, Target::Next, Target::To(l));
        a.ret(1);
        a.bind(l);
        a.ret(2);
        let p = a.assemble();
        assert_eq!(
            p,
            vec![
                stmt(LD_W_ABS, 0),
                jump(JMP_JEQ_K, 7, 0, 1),
                stmt(RET_K, 1),
                stmt(RET_K, 2)
            ]
        );
    }

    #[test]
    fn far_conditional_jump_uses_trampolines() {
        let mut a = Asm::new();
        let far = a.label();
        a.jump(Cmp::Ge, 5, Target::To(far), Target::Next);
        for i in 0..300 {
            a.ret(i);
        }
        a.bind(far);
        a.ret(999);
        let p = a.assemble();
        assert_eq!(p.len(), 3 + 300 + 1);
        assert_eq!(p[0], jump(JMP_JGE_K, 5, 0, 1));
        // true: ja from 1 to 303
        assert_eq!(p[1], stmt(JMP_JA, 301));
        // false (Next): ja from 2 to 3
        assert_eq!(p[2], stmt(JMP_JA, 0));
        assert_eq!(p[303], stmt(RET_K, 999));
    }

    #[test]
    #[should_panic(expected = "forward")]
    fn backward_jump_is_a_bug() {
        let mut a = Asm::new();
        let l = a.label();
        a.bind(l);
        a.ret(0);
        a.jump(Cmp::Eq, 0, Target::To(l), Target::Next);
        a.assemble();
    }
}
