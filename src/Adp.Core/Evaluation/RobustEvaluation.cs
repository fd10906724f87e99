using System.Diagnostics;
using System.Text.Json;
using Adp.Attacks;
using Adp.Data;
using Adp.IO;
using Adp.Purification;
using Adp.Training;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>Per-image outcomes of one (attack, seed) cell, filled batch by batch (so a killed run resumes).</summary>
public sealed class CellState
{
    public int BatchesDone { get; set; }
    /// <summary>rule name → resubmission → per-image correctness (1/0), in image order.</summary>
    public Dictionary<string, List<List<int>>> Correct { get; set; } = new();
    /// <summary>steps T → per-image correctness under mean softmax (only for the steps-curve attack).</summary>
    public Dictionary<int, List<int>> StepsCurve { get; set; } = new();
    /// <summary>attack iterations k → per-image correctness under mean softmax on the k-step iterate.</summary>
    public Dictionary<int, List<int>> IterationsCurve { get; set; } = new();
    public double Seconds { get; set; }
}

/// <summary>
/// Runs a <see cref="RobustConfig"/>: for every attack and seed, adversarial examples for the first N test
/// images (batch by batch), then the bare or defended classification of each, resubmitted R times to the
/// randomized defense. Progress is saved after every batch in <c>progress.json</c>; rerunning with the same
/// report folder resumes.
/// </summary>
public sealed class RobustEvaluation(RobustConfig config, ImageDataset data, nn.Module<Tensor, Tensor> classifier,
    nn.Module<Tensor, Tensor> score, Device device, string reportDir)
{
    public const string BareRule = "Bare";
    private string ProgressPath => Path.Combine(reportDir, "progress.json");
    public Dictionary<string, CellState> Cells { get; private set; } = new();
    /// <summary>Clean, adversarial and purified images of the first batch per attack (seed 0), for the grid.</summary>
    public Dictionary<string, (Tensor Clean, Tensor Adv, Tensor Purified)> Examples { get; } = new();

    public static string CellKey(int attack, long seed) => $"{attack}|{seed}";

    public void Run(Action<string, long, long>? progress = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(reportDir);
        if (File.Exists(ProgressPath))
            Cells = JsonSerializer.Deserialize<Dictionary<string, CellState>>(File.ReadAllText(ProgressPath)) ?? new();
        var attacks = config.AllAttacks();
        foreach (var spec in attacks) spec.Validate();
        int batches = (data.Count + config.BatchSize - 1) / config.BatchSize;
        int curveAttack = attacks.FindIndex(a => a.EvaluatesDefense && a.Kind != AttackKind.None);
        long total = (long)attacks.Count * config.Seeds.Count * batches, done = Cells.Values.Sum(c => (long)c.BatchesDone);
        for (int a = 0; a < attacks.Count; a++)
            foreach (var seed in config.Seeds)
            {
                var key = CellKey(a, seed);
                var cell = Cells.TryGetValue(key, out var c) ? c : Cells[key] = new CellState();
                for (int b = cell.BatchesDone; b < batches; b++)
                {
                    if (cancel.IsCancellationRequested) return;
                    var clock = Stopwatch.StartNew();
                    RunBatch(attacks[a], a, seed, b, cell, a == curveAttack);
                    cell.Seconds += clock.Elapsed.TotalSeconds;
                    cell.BatchesDone = b + 1;
                    AtomicFile.Write(ProgressPath, JsonSerializer.SerializeToUtf8Bytes(Cells));
                    progress?.Invoke($"{attacks[a].Label} seed {seed}", ++done, total);
                }
            }
    }

    private void RunBatch(AttackSpec spec, int attackIndex, long seed, int batch, CellState cell, bool stepsCurve)
    {
        using var scope = NewDisposeScope();
        int start = batch * config.BatchSize, n = Math.Min(config.BatchSize, data.Count - start);
        var x = data.Images(start, n, device);
        var y = data.Labels.narrow(0, start, n).to(device);
        var iterates = new SortedDictionary<int, Tensor>();  // outside every dispose scope (the attack's own scopes end first)
        var adv = spec.Kind == AttackKind.None ? x : Attack(spec, attackIndex, seed, batch, iterates).Perturb(AttackModel(spec), x, y);
        foreach (var t in iterates.Values) scope.Attach(t);
        if (!spec.EvaluatesDefense)
        {
            using var _ = no_grad();
            Append(cell, BareRule, 0, classifier.forward(adv).argmax(1).eq(y));
            foreach (var (k, xk) in iterates) AppendCurve(cell.IterationsCurve, k, classifier.forward(xk).argmax(1).eq(y));
        }
        else
        {
            var defense = new DefendedClassifier(classifier, new AdaptiveStepPurifier(score, config.Purifier), config.Runs);
            for (int r = 0; r < config.Resubmissions; r++)
            {
                using var g = new Generator(Seeds.MixTorch(seed, attackIndex, batch, r, 11), CPU);
                using var o = defense.Classify(adv, g);
                foreach (var rule in config.Rules) Append(cell, rule.ToString(), r, o.Predict(rule).eq(y));
            }
            foreach (var (k, xk) in iterates)
            {
                using var g = new Generator(Seeds.MixTorch(seed, attackIndex, batch, k, 17), CPU);
                using var o = defense.Classify(xk, g);
                AppendCurve(cell.IterationsCurve, k, o.Predict(DecisionRule.MeanSoftmax).eq(y));
            }
            if (stepsCurve)
                foreach (var t in config.StepsCurve)
                {
                    var d = new DefendedClassifier(classifier, new AdaptiveStepPurifier(score, config.Purifier with { Steps = t }), config.Runs);
                    using var g = new Generator(Seeds.MixTorch(seed, attackIndex, batch, t, 13), CPU);
                    using var o = d.Classify(adv, g);
                    AppendCurve(cell.StepsCurve, t, o.Predict(DecisionRule.MeanSoftmax).eq(y));
                }
        }
        if (batch == 0 && seed == config.Seeds[0])
        {
            int k = Math.Min(8, n);
            Tensor purified;
            using (var g = new Generator(1, CPU))
            using (var r = new AdaptiveStepPurifier(score, config.Purifier).Purify(adv.narrow(0, 0, k), g))
                purified = r.Images.clone();
            Examples[spec.Label] = (x.narrow(0, 0, k).cpu().clone().MoveToOuterDisposeScope(), adv.narrow(0, 0, k).cpu().clone().MoveToOuterDisposeScope(),
                purified.cpu().MoveToOuterDisposeScope());
        }
    }

    private static void Append(CellState cell, string rule, int resubmission, Tensor correct)
    {
        if (!cell.Correct.TryGetValue(rule, out var lists)) cell.Correct[rule] = lists = [];
        while (lists.Count <= resubmission) lists.Add([]);
        lists[resubmission].AddRange(correct.to(ScalarType.Int32).cpu().data<int>().ToArray());
    }

    /// <summary>Adds per-image correctness at curve point <paramref name="k"/> (purification steps or attack iterations).</summary>
    private static void AppendCurve(Dictionary<int, List<int>> curve, int k, Tensor correct)
    {
        if (!curve.TryGetValue(k, out var list)) curve[k] = list = [];
        list.AddRange(correct.to(ScalarType.Int32).cpu().data<int>().ToArray());
    }

    private IAttack Attack(AttackSpec s, int attackIndex, long seed, int batch, IDictionary<int, Tensor> iterates)
    {
        Action<int, Tensor>? onIterate = s.IterationsCurve.Count == 0 ? null
            : (k, adv) => { if (s.IterationsCurve.Contains(k)) iterates[k] = adv.detach().clone().DetachFromDisposeScope(); };
        var threat = new ThreatModel(s.Norm, s.Epsilon, s.EffectiveStep, s.Iterations, s.Restarts, s.RandomStart, s.Loss,
            (long)Seeds.MixTorch(seed, attackIndex, batch, 7));
        return s.Kind switch
        {
            AttackKind.Fgsm => new Fgsm(threat),
            AttackKind.Pgd => new Pgd(threat) { ReturnBest = s.ReturnBest, OnIterate = onIterate },
            AttackKind.Apgd => new Apgd(threat),
            _ => throw new AdpException($"attack '{s.Label}': unknown kind {s.Kind}"),
        };
    }

    private IAttackModel AttackModel(AttackSpec s) => s.Target switch
    {
        AttackTarget.Bare or AttackTarget.Blind => new ClassifierModel(classifier),
        AttackTarget.Bpda => new BpdaEotModel(classifier, new AdaptiveStepPurifier(score, config.Purifier), s.Eot, BpdaAggregation.SignVote),
        AttackTarget.BpdaMean => new BpdaEotModel(classifier, new AdaptiveStepPurifier(score, config.Purifier), s.Eot, BpdaAggregation.Mean),
        AttackTarget.BpdaScore => new BpdaEotModel(classifier, new AdaptiveStepPurifier(score, config.Purifier), s.Eot, BpdaAggregation.ScoreAware, score),
        AttackTarget.Full => new FullGradientEotModel(classifier, new DifferentiablePurifier(score, config.Purifier), s.Eot),
        _ => throw new AdpException($"attack '{s.Label}': unknown target {s.Target}"),
    };
}
