"""Sender deltas of a patched run: each sender's output minus its ablated output, the state a patched forward
carries from stage to stage (and that a restarted run reuses from a cached one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GradReference:
    """Activation differences that edge-mask gradients are taken against, instead of the run's own.

    In `run_grad`, d out / d mask[s->r] is (sender delta of this run) . (d out / d input_r), and for a direct
    edge (q/k/v of this run - ablated q/k/v) . (d out / d q/k/v). With a reference, the run's values are
    unchanged but those factors are replaced by the reference's: EAP-IG runs the model on interpolated inputs
    and multiplies the gradients there by the clean-minus-ablated differences. Build with
    `Patcher.grad_reference(ctx)` (acdc_compare.patching.engine).

    deltas [S, N*P*d]: each sender's clean output minus its ablated output; dq [L, H, N, P, dh] and
    dk / dv [L, G, N, P, dh]: clean q/k/v vectors minus the ablated ones.
    """

    deltas: torch.Tensor
    dq: torch.Tensor
    dk: torch.Tensor
    dv: torch.Tensor


_SELECT_BELOW = 3  # rows are selected when fewer than 1/3 of the upstream senders are read


class Deltas:
    """Sender deltas of a run: a shared prefix (from a cached run, batch 1 or K) and this run's own part."""

    reference: GradReference | None = None  # only differentiable runs (`GradDeltas`) take one

    def __init__(self, prefix: torch.Tensor | None, own: torch.Tensor, s0: int, select_rows: bool = False) -> None:
        self.prefix, self.own, self.s0 = prefix, own, s0
        self.select_rows = select_rows
        self._sum: tuple[int, torch.Tensor] | None = None  # (n, sum of the deltas of senders 0..n-1)

    def gather(self, mask: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """bias + sum_s mask[k, s, r] * delta[k, s] -> [K, R, X] over senders 0..mask.shape[1]-1.

        With `select_rows`, a mask that reads few of the senders (a sparse circuit) reads only those rows:
        the dense product is bound by reading every upstream sender's delta, most of them multiplied by 0."""
        if self.select_rows:
            if bool((mask == 1).all()):
                return self._gather_all(mask.shape, bias)
            used = torch.nonzero(mask.any(2).any(0)).flatten()
            if used.numel() * _SELECT_BELOW < mask.shape[1]:
                return self._gather_rows(mask, used, bias)
        return self._gather_dense(mask, bias)

    def _gather_all(self, shape: torch.Size, bias: torch.Tensor | None) -> torch.Tensor:
        """`gather` of a mask keeping every sender: each receiver reads the same running sum, extended by the
        senders added since the last stage instead of summing all of them again ([K, R, X], a broadcast view)."""
        K, n_up, R = shape
        total = self._running_sum(n_up)
        total = total if bias is None else total + bias
        return total[:, None].expand(K, R, total.shape[-1])

    def _running_sum(self, n_up: int) -> torch.Tensor:
        n, total = self._sum if self._sum is not None and self._sum[0] <= n_up else (0, None)
        for part, first in ((self.prefix, 0), (self.own, self.s0)):
            lo, hi = max(n, first), min(n_up, first + (0 if part is None else part.shape[1]))
            if lo < hi:
                chunk = part[:, lo - first:hi - first].sum(1)  # type: ignore[index]
                total = chunk if total is None else total + chunk
        assert total is not None
        self._sum = (n_up, total)
        return total

    def _gather_rows(self, mask: torch.Tensor, used: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """`gather` over the senders `used` (ascending) only: every other sender's mask is 0 everywhere."""
        cut = int(torch.searchsorted(used, self.s0))
        out = None
        for part, senders, first in ((self.prefix, used[:cut], 0), (self.own, used[cut:], self.s0)):
            if senders.numel() == 0:
                continue
            rows = part.index_select(1, senders - first)
            term = batched_combine(mask[:, senders], rows, bias if out is None else None)
            out = term if out is None else out.add_(term)
        if out is None:
            K, _, R = mask.shape
            zeros = torch.zeros(K, R, self.own.shape[-1], device=self.own.device, dtype=self.own.dtype)
            out = zeros if bias is None else zeros.add_(bias)
        return out

    def _gather_dense(self, mask: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        n_up = mask.shape[1]
        a = min(n_up, self.s0)
        out = None
        if a > 0:
            out = batched_combine(mask[:, :a], self.prefix[:, :a], bias)
        if n_up > self.s0:
            own_mask, own = mask[:, self.s0:], self.own[:, : n_up - self.s0]
            if out is None:
                out = batched_combine(own_mask, own, bias)
            else:
                out.baddbmm_(own_mask.transpose(1, 2), own)
        return out

    def gather_positions(self, mask: torch.Tensor, flat_pos: torch.Tensor, p: int, d: int) -> torch.Tensor:
        """Like gather for one receiver, only at the scored positions: mask [K, S] (or per scored position
        [K, S, N*Q]) -> [K, N*Q, d]."""
        m = mask_letters(mask)
        out = None
        for part, lo in ((self.prefix, 0), (self.own, self.s0)):
            if part is None or part.shape[1] == 0:
                continue
            hi = lo + part.shape[1]
            sel = part.view(part.shape[0], part.shape[1], -1, d)[:, :, flat_pos]  # [K', S', NQ, d]
            if sel.shape[0] == 1:
                term = torch.einsum(f"{m},sxd->kxd", mask[:, lo:hi], sel[0])
            else:
                term = torch.einsum(f"{m},ksxd->kxd", mask[:, lo:hi], sel)
            out = term if out is None else out + term
        return out

    def write(self, senders: slice, values: torch.Tensor) -> None:
        self.own[:, senders.start - self.s0: senders.stop - self.s0] = values

    def write_diff(self, senders: slice, values: torch.Tensor, ablated: torch.Tensor) -> None:
        """Store values - ablated straight into the buffer (one pass)."""
        torch.sub(values, ablated, out=self.own[:, senders.start - self.s0: senders.stop - self.s0])

    def materialize(self) -> torch.Tensor:
        if self.prefix is None or self.s0 == 0:
            return self.own
        prefix = self.prefix.expand(self.own.shape[0], -1, -1)
        return torch.cat([prefix, self.own], dim=1)


def mask_letters(mask: torch.Tensor) -> str:
    """einsum letters of a logits mask: one per circuit and sender (`ks`), or per scored position too (`ksx`)."""
    return "ks" if mask.dim() == 2 else "ksx"


def batched_combine(mask: torch.Tensor, deltas: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """bias + mask^T @ deltas: mask [K, S, R], deltas [K or 1, S, X], bias [X] (added in the same kernel)."""
    K, S, R = mask.shape
    if deltas.shape[0] == 1:
        flat_mask = mask.permute(0, 2, 1).reshape(K * R, S)
        flat = flat_mask @ deltas[0] if bias is None else torch.addmm(bias, flat_mask, deltas[0])
        return flat.view(K, R, -1)
    if bias is None:
        return torch.bmm(mask.transpose(1, 2), deltas)
    return torch.baddbmm(bias, mask.transpose(1, 2), deltas)
