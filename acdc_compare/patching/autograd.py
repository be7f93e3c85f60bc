"""The differentiable patched run's custom gradients (attribution methods): sender deltas in one preallocated
buffer whose gathers route mask and sender gradients by hand, and the reference differences EAP-IG takes its
gradients against."""

from __future__ import annotations

import torch

from acdc_compare.patching.deltas import Deltas, GradReference, batched_combine, mask_letters


class GradDeltas(Deltas):
    """Sender deltas of a differentiable run (`run_grad`).

    Values go into one preallocated buffer [K, S, X] that every later stage reads a prefix of, so no stage
    concatenates or stores the deltas again. Custom autograd functions route the gradients: a gather's mask
    gradient is (delta, or the reference's delta) . (receiver gradient), its sender gradient mask^T .
    (receiver gradient), accumulated into one gradient buffer that each sender's `_Store` hands back.
    """

    def __init__(self, K: int, n_senders: int, x_size: int, device: torch.device, dtype: torch.dtype,
                 reference: GradReference | None) -> None:
        self.buf = torch.empty(K, n_senders, x_size, device=device, dtype=dtype)
        self.grad: torch.Tensor | None = None
        self.reference = reference
        self.tokens: list[tuple[int, torch.Tensor]] = []  # (first sender after the chunk, autograd token)
        self.K, self.s0, self.prefix = K, 0, None

    @property
    def own(self) -> torch.Tensor:  # type: ignore[override]
        return self.buf

    def mask_source(self) -> torch.Tensor:
        """What mask gradients multiply: the reference's deltas [1, S, X], or this run's [K, S, X]."""
        return self.buf if self.reference is None else self.reference.deltas[None]

    def add_grad(self, n_up: int, mask: torch.Tensor, grad: torch.Tensor) -> None:
        """grad_buf[:, :n_up] += mask [K, n_up, R] @ grad [K, R, X]."""
        if self.grad is None:
            self.grad = torch.zeros_like(self.buf)
        self.grad[:, :n_up].baddbmm_(mask, grad)

    def _tokens(self, n_up: int) -> list[torch.Tensor]:
        return [tok for stop, tok in self.tokens if stop <= n_up]

    def gather(self, mask: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self._tokens(mask.shape[1])
        R = mask.shape[2]
        if R > 1 and bool((mask == mask[:, :, :1]).all()):
            # every receiver reads the same input (EAP, EAP-IG: uniform masks): gather it once; the tap
            # still gives each receiver's mask its own gradient
            shared = _Gather.apply(mask[:, :, :1].detach(), self, bias, *tokens)
            return _MaskTap.apply(shared, mask, self)
        return _Gather.apply(mask, self, bias, *tokens)

    def gather_positions(self, mask: torch.Tensor, flat_pos: torch.Tensor, p: int, d: int) -> torch.Tensor:
        out = _GatherPositions.apply(mask, self, flat_pos, d, *self._tokens(mask.shape[1]))
        # the logits are the last reader: drop the tokens, which would otherwise hold a reference cycle
        # (buffer -> token -> autograd node -> buffer) that keeps every buffer of the run alive
        self.tokens.clear()
        return out

    def write_diff(self, senders: slice, values: torch.Tensor, ablated: torch.Tensor) -> None:
        self.tokens.append((senders.stop, _Store.apply(values, self, senders.start, senders.stop, ablated)))

    def write(self, senders: slice, values: torch.Tensor) -> None:
        self.tokens.append((senders.stop, _Store.apply(values, self, senders.start, senders.stop, None)))

    def materialize(self) -> torch.Tensor:
        return self.buf.detach()


class _Store(torch.autograd.Function):
    """Write a stage's sender deltas (values, minus `ablated` if given) into the buffer; return a scalar token
    that later gathers take as input so that the graph connects, and hand the accumulated buffer gradient back
    in backward."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, store: GradDeltas, lo: int, hi: int,
                ablated: torch.Tensor | None) -> torch.Tensor:
        if ablated is None:
            store.buf[:, lo:hi] = values
        else:
            torch.sub(values, ablated, out=store.buf[:, lo:hi])
        ctx.store, ctx.lo, ctx.hi, ctx.batch = store, lo, hi, values.shape[0]
        return values.new_zeros(())

    @staticmethod
    def backward(ctx, _token_grad: torch.Tensor):
        grad = ctx.store.grad
        if grad is None:
            return None, None, None, None, None
        out = grad[:, ctx.lo:ctx.hi]
        if ctx.batch == 1 and out.shape[0] != 1:
            out = out.sum(0, keepdim=True)
        return out, None, None, None, None


class _Gather(torch.autograd.Function):
    """bias + sum_s mask[k, s, r] * delta[k, s] over senders 0..n_up-1 (mask [K, n_up, R] -> [K, R, X]);
    the bias (an ablated residual) takes no gradient."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, store: GradDeltas, bias: torch.Tensor | None,
                *tokens: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.store, ctx.n_tokens = store, len(tokens)
        return batched_combine(mask, store.buf[:, : mask.shape[1]], bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        store: GradDeltas = ctx.store
        n_up = mask.shape[1]
        grad_mask = None
        if ctx.needs_input_grad[0]:
            grad_mask = _mask_grad(store.mask_source()[:, :n_up], grad)
        if any(ctx.needs_input_grad[3:]):
            store.add_grad(n_up, mask, grad)
        return (grad_mask, None, None, *[grad.new_zeros(()) for _ in range(ctx.n_tokens)])


class _MaskTap(torch.autograd.Function):
    """Broadcast one receiver input [K, 1, X] to R receivers whose masks are all equal, and give each
    receiver's mask its own gradient: (delta, or the reference's delta) . (that receiver's gradient)."""

    @staticmethod
    def forward(ctx, shared: torch.Tensor, mask: torch.Tensor, store: GradDeltas) -> torch.Tensor:
        ctx.store, ctx.n_up = store, mask.shape[1]
        return shared.expand(-1, mask.shape[2], -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_mask = None
        if ctx.needs_input_grad[1]:
            grad_mask = _mask_grad(ctx.store.mask_source()[:, : ctx.n_up], grad)
        return grad.sum(1, keepdim=True), grad_mask, None


class SharedLayerNorm(torch.autograd.Function):
    """LayerNorm of an input broadcast over receivers (stride 0 on dim 1, from `_MaskTap`): normalised once,
    returned broadcast, while the backward still gives each receiver its own input gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        x1 = x.narrow(1, 0, 1)
        out, mean, rstd = torch.ops.aten.native_layer_norm(x1, [x.shape[-1]], weight, bias, eps)
        ctx.save_for_backward(x1, mean, rstd, weight)
        ctx.has_bias = bias is not None
        return out.expand(x.shape)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x1, mean, rstd, weight = ctx.saved_tensors
        shape = grad.shape
        stat_shape = (*shape[:-1], 1)
        grad_x, _, _ = torch.ops.aten.native_layer_norm_backward(
            grad.contiguous(), x1.expand(shape).contiguous(), [shape[-1]], mean.expand(stat_shape).contiguous(),
            rstd.expand(stat_shape).contiguous(), weight, None, [True, False, False])
        return grad_x, None, None, None


def _mask_grad(src: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """d out / d mask[k, s, r] = sum_x src[k or 0, s, x] * grad[k, r, x]: src [1 or K, S, X], grad [K, R, X]."""
    if src.shape[0] == 1 and grad.shape[0] > 1:
        K, R, X = grad.shape
        return (src[0] @ grad.reshape(K * R, X).T).view(-1, K, R).transpose(0, 1)
    return torch.bmm(src.expand(grad.shape[0], -1, -1), grad.transpose(1, 2))


class _GatherPositions(torch.autograd.Function):
    """Like `_Gather` for the logits receiver, only at the scored positions: mask [K, S] (or per scored
    position [K, S, N*Q], a span graph's) -> [K, N*Q, d]."""

    @staticmethod
    def forward(ctx, mask: torch.Tensor, store: GradDeltas, flat_pos: torch.Tensor, d: int,
                *tokens: torch.Tensor) -> torch.Tensor:
        K, S = mask.shape[:2]
        sel = store.buf[:, :S].reshape(K, S, -1, d)[:, :, flat_pos]  # [K, S, NQ, d]
        ctx.save_for_backward(mask, flat_pos)
        ctx.store, ctx.d, ctx.n_tokens = store, d, len(tokens)
        return torch.einsum(f"{mask_letters(mask)},ksxd->kxd", mask, sel)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        mask, flat_pos = ctx.saved_tensors
        store: GradDeltas = ctx.store
        K, S = mask.shape[:2]
        d, m = ctx.d, mask_letters(mask)
        grad_mask = None
        if ctx.needs_input_grad[0]:
            src = store.mask_source()[:, :S]
            sel = src.reshape(src.shape[0], S, -1, d)[:, :, flat_pos]
            grad_mask = torch.einsum(f"kxd,ksxd->{m}", grad, sel.expand(K, -1, -1, -1))
        if any(ctx.needs_input_grad[4:]):
            if store.grad is None:
                store.grad = torch.zeros_like(store.buf)
            target = store.grad[:, :S].view(K, S, -1, d)
            contrib = torch.einsum(f"{m},kxd->ksxd", mask, grad)
            if flat_pos.unique().numel() == flat_pos.numel():  # plain indexing is ~10x faster than index_add_
                target[:, :, flat_pos] += contrib
            else:
                target.index_add_(2, flat_pos, contrib)
        return (grad_mask, None, None, None, *[grad.new_zeros(()) for _ in range(ctx.n_tokens)])
