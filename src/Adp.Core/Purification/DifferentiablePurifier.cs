using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Purification;

/// <summary>
/// The ADP purifier with autograd through the network calls and the updates, for full-gradient adaptive
/// attacks (METHOD.md §5). As in later evaluations, the step size α (which needs the probe call h(x+δh)) is
/// computed without gradient; so is the stopping decision. With <see cref="Checkpointing"/> (default), each
/// step keeps only its input and recomputes h(x_t) during the backward pass, so memory stays that of one step
/// plus the iterates instead of growing with T network graphs. The noise injection x₀ = clip(x + σε) is differentiated
/// as written (zero gradient at clipped pixels); Croce et al.'s diff_adp instead adds the noise as a constant difference,
/// passing the gradient straight through the clip, which gives ~10–20% larger EOT-gradient norms on Fashion-MNIST
/// (docs/BENCHMARKS.md).
/// </summary>
public sealed class DifferentiablePurifier(nn.Module<Tensor, Tensor> score, PurifierSettings settings) : IDifferentiablePurifier
{
    public PurifierSettings Settings { get; } = settings;

    public string Describe() => "ADP " + Settings.Describe();

    /// <summary>The score network h; attack models put it in evaluation mode, also for the backward pass.</summary>
    public nn.Module<Tensor, Tensor> Score { get; } = score;

    /// <summary>True (default): each step's network graph is recomputed in the backward pass; per step the forward pass runs
    /// the two step-size calls h(x_t), h(x_t + δh) without graph and the backward pass one more forward and one backward:
    /// memory of one network chunk's graph plus the T + 1 iterates. False: h(x_t) is computed once with its graph, which also
    /// serves the step size, and every step's graph is kept until the backward pass (the peer's diff_adp does this): one
    /// network pass per step fewer; warm, 27–34% less time on CIFAR-10 (ngf 32) at EOT 20 and batch 8, 8–15% at EOT 4 and batch
    /// 4, but 15–26% more on the ngf-16 28×28 models, where writing and reading the graph costs more than a network call
    /// (one thread, docs/BENCHMARKS.md). Its memory grows with rows × steps (× stages for re-injection): CIFAR-10 ngf 32,
    /// 16 rows, T = 10: peak RSS 2.7 GiB against 0.7 GiB; MNIST's preset, 32 rows, 2 × 20 steps: 7.0 GiB. The gradient is the
    /// same to float rounding.</summary>
    public bool Checkpointing { get; init; } = true;

    /// <summary>Images per network call, also per backward recomputation (so with <see cref="Checkpointing"/> the graph held
    /// at once is that of one chunk); see <see cref="AdaptiveStepPurifier.NetworkChunk"/>.</summary>
    public int Chunk { get; init; } = AdaptiveStepPurifier.ChunkFor(score);

    /// <summary>As <see cref="Purify(Tensor, Tensor)"/> with ε = one standard-normal draw of <paramref name="random"/> (what
    /// <see cref="AdaptiveStepPurifier"/> draws).</summary>
    public Tensor Purify(Tensor x, RandomSource random)
    {
        using var draw = random.Randn(x.shape);
        using var eps = draw.to(x.dtype).to(x.device);
        return Purify(x, eps);
    }

    /// <summary>
    /// Purified images (N×C×H×W) with a graph back to <paramref name="x"/> (x₀ = clip(x + σε), ε N×C×H×W). Stopping
    /// is that of <see cref="AdaptiveStepPurifier"/>: an image stops once α ≤ τ or when its score is zero or not finite
    /// (it then keeps its iterate, with a finite gradient), and the loop ends when every image has stopped. The score
    /// network runs in evaluation mode here; a checkpointed step recomputes it in the backward pass, so callers that
    /// differentiate should hold it in evaluation mode too (<see cref="EvalMode"/>).
    /// </summary>
    public Tensor Purify(Tensor x, Tensor eps)
    {
        var s = Settings;
        s.Validate();
        using var eval = EvalMode.Enter(Score);
        using var scope = NewDisposeScope();
        using var sigma = s.Sigma.ToScalar();  // held: see RootedScalars
        var cur = x.Plus(eps.mul(sigma)).clamp(RootedScalars.IntZero, RootedScalars.IntOne);
        if (s.Faithful) cur = AdaptiveStepPurifier.RangeMap(cur);
        long n = x.shape[0];
        var running = ones(new long[] { n }, ScalarType.Bool, device: x.device);
        for (int t = 0; t < s.Steps; t++)
        {
            var idx = running.nonzero().flatten();
            if (idx.shape[0] == 0) break;
            var xr = cur.index_select(0, idx);
            Tensor alpha, go, h, pick, goIdx;
            // Without checkpointing h(x_t) is computed once, with its graph, and serves the step size as well.
            Tensor? hGraph = Checkpointing ? null : AdaptiveStepPurifier.Chunked(Score, xr, Chunk);
            using (no_grad())
            {
                if (hGraph is null) alpha = AdaptiveStepPurifier.StepSize(Score, xr.detach(), s, out h, Chunk);
                else (alpha, h) = (AdaptiveStepPurifier.StepSize(Score, xr.detach(), hGraph.detach(), s, Chunk), hGraph);
                using var tau = s.Tau.ToScalar();
                go = alpha.gt(tau);
                running = running.index_copy(0, idx, go);
                pick = go.nonzero().flatten();
                goIdx = idx.index_select(0, pick);
                alpha = alpha.index_select(0, pick);
            }
            var hAll = h;
            // As in the research code, the loop ends before any update once every image has stopped.
            if (pick.shape[0] == 0) { hAll.Dispose(); break; }
            bool finite;
            using (no_grad()) finite = hGraph is null || TweediePurifier.FiniteRows(hGraph).all().item<bool>();
            // Outside no_grad, so h keeps hGraph's graph. A row whose score is not finite stops, and its graph must not run
            // through the network, whose backward pass would turn the non-finite activations into a NaN gradient (0·∞): then
            // the stepping rows are recomputed alone (bitwise the same values: the network is batch-independent).
            var xs = xr.index_select(0, pick);
            h = finite ? hAll.index_select(0, pick) : AdaptiveStepPurifier.Chunked(Score, xs, Chunk);
            hAll.Dispose();
            // The checkpointed step reuses h(x_t) from the step-size probe for its forward value, so each step costs the two
            // probe calls plus one recomputation with graph in backward; without checkpointing h carries its graph.
            var next = Checkpointing
                ? CheckpointedStep.apply(xs, new StepState(Score, alpha, s.Faithful, h, Chunk))
                : AdaptiveStepPurifier.Advance(xs, alpha, h, s.Faithful);
            h.Dispose();
            // Faithful: while any image steps, every other one gets the inverse range map (a zero-step update in the
            // research code, purification/adp.py at 497e2d4, lines 47–52).
            if (s.Faithful) cur = AdaptiveStepPurifier.InverseMap(cur).ClampedToUnit();
            cur = cur.index_copy(0, goIdx, next);
        }
        return cur.MoveToOuterDisposeScope();
    }

    private sealed record StepState(nn.Module<Tensor, Tensor> Score, Tensor Alpha, bool Faithful, Tensor? H, int Chunk);

    /// <summary>x ↦ Advance(x, α, h(x)) with h's graph recomputed in backward instead of stored.</summary>
    private sealed class CheckpointedStep : autograd.SingleTensorFunction<CheckpointedStep>
    {
        public override string Name => "AdpCheckpointedStep";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            var state = (StepState)vars[1];
            ctx.save_for_backward([x, state.Alpha]);  // saved variables outlive the caller's dispose scope
            ctx.save_data("state", state with { Alpha = null!, H = null });
            if (state.H is not null) return AdaptiveStepPurifier.Advance(x, state.Alpha, state.H, state.Faithful);
            using var g = state.Score.forward(x);
            return AdaptiveStepPurifier.Advance(x, state.Alpha, g, state.Faithful);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var (x, alpha) = (saved[0], saved[1]);
            var state = (StepState)ctx.get_data("state");
            using var enable = enable_grad();
            using var scope = NewDisposeScope();
            long n = x.shape[0], chunk = state.Chunk > 0 ? state.Chunk : n;
            var grads = new List<Tensor>();
            for (long start = 0; start < n; start += chunk)
            {
                long m = Math.Min(chunk, n - start);
                var xr = x.narrow(0, start, m).detach().requires_grad_(true);
                Tensor h;
                using (NativeRuntime.ForwardInBackward()) h = state.Score.forward(xr);   // recomputation: a forward pass
                var y = AdaptiveStepPurifier.Advance(xr, alpha.narrow(0, start, m), h, state.Faithful);
                using (NativeRuntime.Backward()) grads.Add(autograd.grad([y], [xr], [gradOutput.narrow(0, start, m)])[0]);   // nests
            }
            return [cat(grads).MoveToOuterDisposeScope(), null!];  // one entry per input; the state gets none
        }
    }
}
