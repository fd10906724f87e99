using System.Diagnostics;
using System.Security.Cryptography;
using Adp.Attacks;
using Adp.Data;
using Adp.Purification;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>
/// Runs a <see cref="RobustConfig"/>: for every attack and seed, adversarial examples for the configuration's images
/// (batch by batch), then the bare or defended classification of each, resubmitted R times to the randomized defense.
/// Every random draw concerning image i (random start, EOT noise, the purification noise of every run and
/// resubmission) comes from a stream keyed by (seed, data set index of i, attack id, purpose), so per-image outcomes
/// do not depend on the batch size, the batch order or the shard (up to float rounding where libtorch picks
/// other kernels for other batch sizes). Progress is saved per image after every batch in <c>progress.json</c>
/// with a fingerprint of everything that decides a result; rerunning into the same folder computes only what is
/// missing, and refuses a folder made with other settings. Adversarial examples are saved per cell in <c>adv/</c>.
/// </summary>
public sealed class RobustEvaluation(RobustConfig config, ImageDataset data, nn.Module<Tensor, Tensor> classifier,
    nn.Module<Tensor, Tensor> score, Device device, string reportDir)
{
    public const string BareRule = "Bare";

    /// <summary>Random-stream purposes (the last key part after seed, image index and attack id).</summary>
    private const long AttackPurpose = 1, ResubmissionPurpose = 2, IterationsPurpose = 3, StepsPurpose = 4, ExamplesPurpose = 5;
    /// <summary>Purpose of the clean-input classification that decides what <see cref="AttackSpec.SkipMisclassified"/> skips.</summary>
    internal const long SkipCheckPurpose = 6;

    public EvaluationProgress Progress { get; private set; } = new();
    /// <summary>Clean, adversarial and purified images of the first images per attack (first seed), for the grid
    /// (<see cref="BuildExamples"/>).</summary>
    public Dictionary<string, (Tensor Clean, Tensor Adv, Tensor Purified)> Examples { get; } = new();
    /// <summary>SHA-256 of the classifier and score-model files (set by the caller; part of the fingerprint).</summary>
    public string ClassifierHash { get; init; } = "?";
    public string ScoreHash { get; init; } = "?";
    /// <summary>Full-gradient attacks: recompute each purification step's network graph in the backward pass (default) or keep
    /// every step's graph (false; faster, more memory: <see cref="DifferentiablePurifier.Checkpointing"/>). A compute setting
    /// like the thread count, not part of the fingerprint: gradients agree to float rounding.</summary>
    public bool Checkpointing { get; init; } = true;
    /// <summary>What the evaluation is doing right now, for progress output (read from another thread).</summary>
    public string Activity => _activity;
    private volatile string _activity = "starting";

    /// <summary>What decides every result of <paramref name="config"/> apart from the attack and seed of a cell (those key
    /// the cells) and the image set (results are per image).</summary>
    public static Dictionary<string, string> ConfigFingerprint(RobustConfig config, string testSplit, string classifierHash, string scoreHash) => new()
    {
        ["data set"] = config.Dataset,
        ["data split"] = testSplit,
        ["classifier sha256"] = classifierHash,
        ["score model sha256"] = scoreHash,
        ["purifier"] = config.PurifierFingerprint(),
        ["runs"] = config.Runs.ToString(),
        ["decision rules"] = string.Join(",", config.Rules),
        ["resubmissions"] = config.Resubmissions.ToString(),
        ["steps curve"] = string.Join(",", config.StepsCurve),
        ["shard"] = config.Shard,
        ["randomness"] = "per image (seed, index, attack, purpose)",
    };

    /// <summary>The fingerprint of this run (the test split is described without the image count, which may grow).</summary>
    public Dictionary<string, string> Fingerprint() =>
        ConfigFingerprint(config, $"{data.Spec.Name} {(data.SplitName.Length > 0 ? data.SplitName : data.Split.ToString().ToLowerInvariant())}" +
                                  $"{(data.IsPartialTestSplit ? " (partial)" : "")}" +
                                  $"{(data.Source == "embedded" ? " (embedded)" : "")}", ClassifierHash, ScoreHash);

    public static string Sha256(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f)).ToLowerInvariant();
    }

    /// <summary>Progress callback: (stage, images done, images total, note).</summary>
    /// <returns>true when every result of the configuration is stored (the examples then built), false when cancellation
    /// stopped it first; a cancellation that arrives after the last batch does not count.</returns>
    public bool Run(Action<string, long, long, string>? progress = null, CancellationToken cancel = default)
    {
        Directory.CreateDirectory(reportDir);
        config.Validate();
        if (config.Images > data.Count) throw new AdpException($"--images: {config.Images} requested, {data.Description} has {data.Count}");
        var fingerprint = Fingerprint();
        var loaded = EvaluationProgress.Load(reportDir);
        if (loaded is not null) loaded.RequireFingerprint(fingerprint, reportDir);
        Progress = loaded ?? new EvaluationProgress { Fingerprint = fingerprint };
        var attacks = config.AllAttacks();
        var wanted = config.ImageIndices();
        int curveAttack = attacks.FindIndex(a => a.EvaluatesDefense && a.Kind != AttackKind.None);
        var todo = new List<(AttackSpec Spec, long Seed, CellState Cell, List<int> Missing)>();
        foreach (var (spec, a) in attacks.Select((s, a) => (s, a)))
            foreach (var seed in config.Seeds)
            {
                var key = EvaluationProgress.CellKey(spec, seed);
                if (!Progress.Cells.TryGetValue(key, out var cell))
                    Progress.Cells[key] = cell = new CellState { Attack = spec.Label, Protocol = spec.Protocol(), Seed = seed };
                var done = cell.Indices.ToHashSet();
                todo.Add((spec, seed, cell, wanted.Where(i => !done.Contains(i)).ToList()));
            }
        // Cells on the bare classifier (no purifier: clean bare, bare PGD, the unbounded sanity attack) cost seconds; run them
        // before the defended ones, so that the last stored batch of a run is its last expensive work and a job stopped after
        // a stored batch (a queue drain) is never left one cheap cell short. Order changes no result (per-image streams), and
        // a cascade's earlier attack evaluates the same model (Validate), so it stays ahead of its successor.
        todo = [.. todo.Where(t => !t.Spec.EvaluatesDefense), .. todo.Where(t => t.Spec.EvaluatesDefense)];
        long total = todo.Sum(t => (long)t.Missing.Count), finished = 0;
        foreach (var (spec, seed, cell, missing) in todo)
            for (int start = 0; start < missing.Count; start += config.BatchSize)
            {
                if (cancel.IsCancellationRequested) return false;
                var batch = missing.GetRange(start, Math.Min(config.BatchSize, missing.Count - start));
                var clock = Stopwatch.StartNew();
                try { RunBatch(spec, seed, batch, cell, attacks.IndexOf(spec) == curveAttack, cancel); }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested) { return false; }  // the batch is dropped whole
                cell.Seconds += clock.Elapsed.TotalSeconds;
                Progress.Save(reportDir);
                finished += batch.Count;
                progress?.Invoke($"{spec.Label} seed {seed}", finished, total, $"images {batch[0]}…{batch[^1]}");
            }
        BuildExamples();
        return true;
    }

    private void RunBatch(AttackSpec spec, long seed, List<int> indices, CellState cell, bool stepsCurve, CancellationToken cancel)
    {
        using var scope = NewDisposeScope();
        long id = spec.StreamId();
        var idx = tensor(indices.Select(i => (long)i).ToArray());
        var x = data.Images(idx, device);
        var y = data.Labels.index_select(0, idx).to(device);
        // Per-image streams: an image's draws depend on its index, never on which other images share the batch.
        PerImageSource Random(List<int> images, params long[] purpose) => PerImageSource.For(seed, images.Select(i => (long)i), [id, .. purpose]);
        string where = $"{spec.Label} seed {seed}, images {indices[0]}…{indices[^1]}";
        // AutoAttack's convention (SkipMisclassified): only images the evaluated model gets right on clean input are attacked.
        var keep = Enumerable.Range(0, indices.Count).ToList();
        HashSet<int>? skipped = null;   // misclassified on clean input: outcome 0, example the clean image
        if (spec.SkipMisclassified && spec.Kind != AttackKind.None)
        {
            _activity = $"{where}: classifying the clean images";
            // One clean pass per (seed, image), shared by every skipping attack of the evaluation (AutoAttack's single mask):
            // its stream does not involve the attack.
            var clean = CleanCorrect(spec, x, y, PerImageSource.For(seed, indices.Select(i => (long)i), [SkipCheckPurpose]));
            keep = keep.Where(j => clean[j]).ToList();
            skipped = indices.Where((_, j) => !clean[j]).ToHashSet();
        }
        // AutoAttack's cascade (After): only images the earlier attack left robust are attacked; the others keep its outcomes
        // and its example.
        var earlier = spec.AfterSpec is null ? null : EarlierOutcomes(spec, seed, indices);
        var broken = new HashSet<int>();  // positions the earlier attack broke (and not skipped as misclassified)
        if (earlier is not null)
        {
            broken = keep.Where(j => !earlier.Survived[j]).ToHashSet();
            keep = keep.Where(j => !broken.Contains(j)).ToList();
        }
        var attacked = keep.Select(j => indices[j]).ToList();
        var keepT = tensor(keep.Select(j => (long)j).ToArray(), device: device);
        var (xa, ya) = keep.Count == indices.Count ? (x, y) : (x.index_select(0, keepT), y.index_select(0, keepT));
        var iterates = new SortedDictionary<int, Tensor>();  // outside every dispose scope (the attack's own scopes end first)
        int budget = spec.Kind == AttackKind.Fgsm ? 1 : (spec.Iterations + 1) * spec.Restarts;
        var model = new TrackedModel(AttackModel(spec), k =>
        {
            cancel.ThrowIfCancellationRequested();  // stop within an attack, not only between batches
            _activity = $"{where}: attack gradient {k}/~{budget}";
        });
        _activity = $"{where}: {(spec.Kind == AttackKind.None ? "classifying" : "attacking")}";
        var adv = spec.Kind == AttackKind.None || attacked.Count == 0 ? xa
            : Attack(spec, seed, iterates).Perturb(model, xa, ya, Random(attacked, AttackPurpose));
        foreach (var t in iterates.Values) scope.Attach(t);
        // A skipped image's adversarial example is the clean image itself (it is misclassified already); one the earlier attack
        // of a cascade broke keeps that attack's example. Both are marked as not attacked (eval replay counts them not robust).
        if (spec.Kind != AttackKind.None)
        {
            var stored = x;
            if (broken.Count > 0)
            {
                var b = tensor(broken.Order().Select(j => (long)j).ToArray(), device: device);
                stored = x.clone().index_copy(0, b, earlier!.Adversarial.index_select(0, b));
            }
            var notAttacked = indices.Where((i, j) => (skipped?.Contains(i) ?? false) || broken.Contains(j)).ToHashSet();
            SaveAdversarial(spec, seed, indices, y, keep.Count == indices.Count ? adv : stored.clone().index_copy(0, keepT, adv),
                notAttacked.Count > 0 || skipped is not null ? notAttacked : null);
        }
        var correct = new Dictionary<string, List<Tensor>>();
        Tensor? runsCorrect = null;
        var iterationsCurve = new Dictionary<int, Tensor>();
        var stepsCurvePoints = new Dictionary<int, Tensor>();
        using var evalMode = EvalMode.Enter(classifier, score);  // leave the models' modes and buffers as found (case 8)
        if (attacked.Count > 0 && !spec.EvaluatesDefense)
        {
            using var _ = no_grad();
            correct[BareRule] = [classifier.forward(adv).argmax(1).eq(ya)];
            foreach (var (k, xk) in iterates) iterationsCurve[k] = classifier.forward(xk).argmax(1).eq(ya);
        }
        else if (attacked.Count > 0)
        {
            var defense = new DefendedClassifier(classifier, config.CreatePurifier(score), config.Runs);
            for (int r = 0; r < config.Resubmissions; r++)
            {
                cancel.ThrowIfCancellationRequested();
                _activity = $"{where}: defended classification, submission {r + 1}/{config.Resubmissions} (S={config.Runs})";
                using var o = defense.Classify(adv, Random(attacked, ResubmissionPurpose, r));
                foreach (var rule in config.Rules)
                {
                    if (!correct.TryGetValue(rule.ToString(), out var list)) correct[rule.ToString()] = list = [];
                    list.Add(o.Predict(rule).eq(ya));
                }
                var runs = o.RunPredictions().eq(ya.view(1, -1)).sum(dim: 0);
                runsCorrect = runsCorrect is null ? runs : runsCorrect.Plus(runs);
            }
            foreach (var (k, xk) in iterates)
            {
                cancel.ThrowIfCancellationRequested();
                _activity = $"{where}: defended classification of the {k}-iteration iterate";
                using var o = defense.Classify(xk, Random(attacked, IterationsPurpose, k));
                iterationsCurve[k] = o.Predict(DecisionRule.MeanSoftmax).eq(ya);
            }
            if (stepsCurve)
                foreach (var t in config.StepsCurve)
                {
                    cancel.ThrowIfCancellationRequested();
                    var d = new DefendedClassifier(classifier, config.CreatePurifier(score, config.Purifier with { Steps = t }), config.Runs);
                    using var o = d.Classify(adv, Random(attacked, StepsPurpose, t));
                    stepsCurvePoints[t] = o.Predict(DecisionRule.MeanSoftmax).eq(ya);
                }
        }
        // Per image of the batch; appended only once everything of the batch is computed, so a cancelled batch leaves the
        // cell consistent. Skipped images: 0, not robust. A cascade: the worst case of both attacks, and the earlier
        // attack's outcome where it broke the image (this attack did not run there).
        int[] Full(Tensor? attackedValues, int[]? earlierValues)
        {
            var full = new int[indices.Count];
            if (attackedValues is not null)
            {
                var values = Ints(attackedValues);
                for (int a = 0; a < keep.Count; a++) full[keep[a]] = values[a];
            }
            if (earlierValues is null) return full;
            for (int j = 0; j < full.Length; j++)
                full[j] = broken.Contains(j) ? earlierValues[j] : Math.Min(full[j], earlierValues[j]);
            return full;
        }
        var rules = spec.EvaluatesDefense ? config.Rules.Select(r => r.ToString()).ToList() : [BareRule];
        cell.Indices.AddRange(indices);
        if (skipped is not null) cell.Skipped.AddRange(indices.Where(skipped.Contains));
        cell.BrokenEarlier.AddRange(indices.Where((_, j) => broken.Contains(j)));
        foreach (var rule in rules)
        {
            if (!cell.Correct.TryGetValue(rule, out var lists)) cell.Correct[rule] = lists = [];
            int resubmissions = spec.EvaluatesDefense ? config.Resubmissions : 1;
            for (int r = 0; r < resubmissions; r++)
            {
                while (lists.Count <= r) lists.Add([]);
                lists[r].AddRange(Full(correct.TryGetValue(rule, out var perResubmission) ? perResubmission[r] : null, earlier?.Correct[rule][r]));
            }
        }
        if (spec.EvaluatesDefense) cell.RunsCorrect.AddRange(Full(runsCorrect, earlier?.RunsCorrect));
        foreach (var k in spec.IterationsCurve.Where(_ => spec.Kind != AttackKind.None).Distinct().Order())
        {
            if (attacked.Count > 0 && !iterationsCurve.ContainsKey(k))
                throw new InvalidOperationException($"attack '{spec.Label}' reported no iterate at iteration {k}");
            AppendCurve(cell.IterationsCurve, k, Full(iterationsCurve.GetValueOrDefault(k), earlier?.CurveRule));
        }
        if (stepsCurve && spec.EvaluatesDefense)
            foreach (var t in config.StepsCurve.Distinct()) AppendCurve(cell.StepsCurve, t, Full(stepsCurvePoints.GetValueOrDefault(t), null));
    }

    /// <summary>The earlier attack's outcomes for a cascade (<see cref="AttackSpec.After"/>), per position of the batch: per rule
    /// and resubmission, the per-run counts (defended), the rule the iterations curve uses (mean softmax, or the bare
    /// classifier), whether the image survived (correct under at least one rule in every resubmission) and its adversarial
    /// examples (batch × C × H × W, from adv/; a survivor's row is replaced by this attack's example).</summary>
    private sealed record Earlier(Dictionary<string, List<int[]>> Correct, int[]? RunsCorrect, int[] CurveRule, bool[] Survived, Tensor Adversarial);

    private Earlier EarlierOutcomes(AttackSpec spec, long seed, List<int> indices)
    {
        var before = spec.AfterSpec!;
        var missing = new AdpException($"attack '{spec.Label}' (seed {seed}): runs after '{before.Label}', whose results for images " +
                                       $"{indices[0]}…{indices[^1]} are not in {reportDir}; run both in one configuration, '{before.Label}' first");
        if (!Progress.Cells.TryGetValue(EvaluationProgress.CellKey(before, seed), out var cell)) throw missing;
        var pos = cell.Positions();
        if (!indices.All(pos.ContainsKey)) throw missing;
        var correct = cell.Correct.ToDictionary(kv => kv.Key, kv => kv.Value.Select(list => indices.Select(i => list[pos[i]]).ToArray()).ToList());
        if (before.EvaluatesDefense && cell.RunsCorrect.Count != cell.Indices.Count)
            throw new AdpException($"attack '{spec.Label}' (seed {seed}): runs after '{before.Label}', whose results in {reportDir} were made by " +
                                   "an older version without per-run outcomes; compute it again in a new folder");
        int[]? runs = before.EvaluatesDefense ? indices.Select(i => cell.RunsCorrect[pos[i]]).ToArray() : null;
        // Robust under at least one rule, in every resubmission (the cascade attacks what the first attack did not break).
        var survived = indices.Select((_, j) => correct.Values.Any(lists => lists.All(l => l[j] == 1))).ToArray();
        var curveRule = correct.TryGetValue(before.EvaluatesDefense ? DecisionRule.MeanSoftmax.ToString() : BareRule, out var c) ? c[0]
            : survived.Select(b => b ? 1 : 0).ToArray();
        var path = AdversarialPath(reportDir, before, seed);
        if (!File.Exists(path)) throw missing;
        var (images, stored, _, _) = AdversarialSet.Read(path);
        var row = stored.data<long>().ToArray().Select((v, r) => (v, r)).ToDictionary(p => p.v, p => (long)p.r);
        if (!indices.All(i => row.ContainsKey(i))) throw missing;
        var adversarial = images.index_select(0, tensor(indices.Select(i => row[i]).ToArray())).to(device);
        return new Earlier(correct, runs, curveRule, survived, adversarial);
    }

    /// <summary>Per image of the batch: classified correctly on clean input under at least one decision rule (the defense,
    /// S runs, one submission) or by the bare classifier.</summary>
    private bool[] CleanCorrect(AttackSpec spec, Tensor x, Tensor y, PerImageSource random)
    {
        using var scope = NewDisposeScope();
        using var evalMode = EvalMode.Enter(classifier, score);
        using var _ = no_grad();
        Tensor ok;
        if (!spec.EvaluatesDefense) ok = classifier.forward(x).argmax(1).eq(y);
        else
        {
            var defense = new DefendedClassifier(classifier, config.CreatePurifier(score), config.Runs);
            using var o = defense.Classify(x, random);
            ok = config.Rules.Select(rule => o.Predict(rule).eq(y)).Aggregate((a, b) => a.logical_or(b));
        }
        return ok.cpu().data<bool>().ToArray();
    }

    /// <summary>
    /// The example grids' images: for every attack, the first k = min(8, batch size, images) images of its cell for the
    /// first seed, their adversarial versions read back from adv/ and one purification of those. Built from what is
    /// stored, after the cells are computed, so that an evaluation resumed after an interruption draws the same grids
    /// as an uninterrupted one (batches computed in one invocation are not the first ones of a resumed cell); attacks
    /// whose first images are not stored yet get none.
    /// </summary>
    public void BuildExamples()
    {
        var wanted = config.ImageIndices();
        long seed = config.Seeds[0];
        var first = wanted.Take(Math.Min(8, Math.Min(config.BatchSize, wanted.Count))).ToList();
        using var evalMode = EvalMode.Enter(classifier, score);
        foreach (var spec in config.AllAttacks())
        {
            if (Examples.ContainsKey(spec.Label)) continue;
            if (!Progress.Cells.TryGetValue(EvaluationProgress.CellKey(spec, seed), out var cell) || !first.All(cell.Indices.Contains)) continue;
            using var scope = NewDisposeScope();
            var x = data.Images(tensor(first.Select(i => (long)i).ToArray()), device);
            Tensor adv = x;
            if (spec.Kind != AttackKind.None)
            {
                var path = AdversarialPath(reportDir, spec, seed);
                if (!File.Exists(path)) continue;
                var (images, indices, _, _) = AdversarialSet.Read(path);  // made in this dispose scope
                var row = indices.data<long>().ToArray().Select((v, r) => (v, r)).ToDictionary(p => p.v, p => (long)p.r);
                if (!first.All(i => row.ContainsKey(i))) continue;
                adv = images.index_select(0, tensor(first.Select(i => row[i]).ToArray())).to(device);
            }
            Tensor purified;
            using (var r = config.CreatePurifier(score).Purify(adv,
                       PerImageSource.For(seed, first.Select(i => (long)i), spec.StreamId(), ExamplesPurpose)))
                purified = r.Images.clone();
            Examples[spec.Label] = (x.cpu().clone().MoveToOuterDisposeScope(), adv.cpu().clone().MoveToOuterDisposeScope(),
                purified.cpu().MoveToOuterDisposeScope());
        }
    }

    /// <summary>Counts the gradient calls of an attack, for progress output.</summary>
    private sealed class TrackedModel(IAttackModel inner, Action<int> onCall) : IAttackModel
    {
        private int _calls;
        private IAttackModel _inner = inner;
        public string Describe() => _inner.Describe();
        public DirectionKind Kind => _inner.Kind;

        public IAttackModel ForThreat(ThreatModel threat)
        {
            _inner = _inner.ForThreat(threat);
            return this;
        }

        public (Tensor Loss, Tensor Direction) LossAndDirection(Tensor x, Tensor y, AttackLoss loss, RandomSource random)
        {
            onCall(++_calls);
            return _inner.LossAndDirection(x, y, loss, random);
        }
    }

    private static int[] Ints(Tensor t) => t.to(ScalarType.Int32).cpu().data<int>().ToArray();

    private static void AppendCurve(Dictionary<int, List<int>> curve, int k, int[] correct)
    {
        if (!curve.TryGetValue(k, out var list)) curve[k] = list = [];
        list.AddRange(correct);
    }

    /// <summary>Where the adversarial examples of a cell are kept (see <see cref="AdversarialSet"/>).</summary>
    public static string AdversarialPath(string dir, AttackSpec spec, long seed) =>
        Path.Combine(dir, "adv", $"{RobustReport.Slug(spec.Label)}-{spec.Id():x16}-seed{seed}.safetensors");

    private void SaveAdversarial(AttackSpec spec, long seed, List<int> indices, Tensor labels, Tensor adv, IReadOnlySet<int>? skipped)
    {
        var meta = new Dictionary<string, string>
        {
            ["attack"] = spec.Label, ["protocol"] = spec.Protocol(), ["seed"] = seed.ToString(), ["data set"] = config.Dataset,
            ["classifier"] = config.Classifier, ["classifier sha256"] = ClassifierHash,
            ["target"] = spec.EvaluatesDefense ? $"{config.DescribePurifier()}, S={config.Runs}" : "bare classifier",
        };
        AdversarialSet.Append(AdversarialPath(reportDir, spec, seed), indices, labels, adv, meta, skipped);
    }

    private IAttack Attack(AttackSpec s, long seed, IDictionary<int, Tensor> iterates)
    {
        Action<int, Tensor>? onIterate = s.IterationsCurve.Count == 0 ? null
            : (k, adv) => { if (s.IterationsCurve.Contains(k)) iterates[k] = adv.detach().clone().DetachFromDisposeScope(); };
        var threat = new ThreatModel(s.Norm, s.Epsilon, s.EffectiveStep, s.Iterations, s.Restarts, s.RandomStart, s.Loss, seed);
        return s.Kind switch
        {
            AttackKind.Fgsm => new Fgsm(threat),
            AttackKind.Pgd => new Pgd(threat) { ReturnBest = s.ReturnBest, OnIterate = onIterate },
            AttackKind.Apgd => new Apgd(threat) { OnIterate = onIterate },
            _ => throw new AdpException($"attack '{s.Label}': unknown kind {s.Kind}"),
        };
    }

    private IAttackModel AttackModel(AttackSpec s) => s.Target switch
    {
        AttackTarget.Bare or AttackTarget.Blind => new ClassifierModel(classifier),
        AttackTarget.Bpda => new BpdaEotModel(classifier, config.CreatePurifier(score), s.Eot, BpdaAggregation.Paper, score),
        AttackTarget.BpdaSignVote => new BpdaEotModel(classifier, config.CreatePurifier(score), s.Eot, BpdaAggregation.SignVote, score),
        AttackTarget.BpdaMean => new BpdaEotModel(classifier, config.CreatePurifier(score), s.Eot, BpdaAggregation.Mean, score),
        AttackTarget.BpdaScore => new BpdaEotModel(classifier, config.CreatePurifier(score), s.Eot, BpdaAggregation.ScoreAware, score),
        AttackTarget.Full => new FullGradientEotModel(classifier,
            config.EffectiveVariant.CreateDifferentiable(score, config.Purifier, Checkpointing), s.Eot),
        _ => throw new AdpException($"attack '{s.Label}': unknown target {s.Target}"),
    };
}
