"""A numba intrinsic for software prefetch: ``llvm.prefetch`` of an array element, so a pass of a walk kernel
can start the cache misses of the next pass for hundreds of walks at once (a prefetch never waits for its
data and never faults)."""
from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: LLVM names the prefetch intrinsic by its pointer type: ``p0`` (opaque pointers, LLVM 15 and later), else ``p0i8``
_PREFETCH = "llvm.prefetch.p0" if llvm_binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


def _prefetch_codegen(context, builder, signature, args):
    """``llvm.prefetch`` (read, high locality, data) of the element at indices ``args[1:]`` (the rest 0)."""
    aryty = signature.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = list(args[1:]) + [context.get_constant(types.intp, 0)] * (aryty.ndim - len(args) + 1)
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                        _PREFETCH)
    builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
    return context.get_dummy_value()


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to bring ``arr[idx]`` (1-D, ``idx`` in bounds) into the cache: a prefetch does not wait
    for its data (it never blocks the instructions after it), so a pass can start the loads of the next pass
    for hundreds of walks at once instead of stalling on each."""
    return types.void(arr, idx), _prefetch_codegen


@intrinsic
def _prefetch_row(typingctx, arr, i):
    """As :func:`_prefetch` for the start of row ``i`` of a C-ordered 2-D array."""
    return types.void(arr, i), _prefetch_codegen
