using System.Globalization;
using System.Text;
using Adp.Attacks;
using Adp.Data;
using Adp.IO;
using Adp.Models;
using Adp.Purification;
using ScottPlot;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>One score-model snapshot measured for purification (issue #12: "plot both against training iterations").</summary>
/// <param name="Iteration">training iteration of the snapshot (its metadata).</param>
/// <param name="Weights">raw (Model) or EMA weights.</param>
/// <param name="DenoiseGain">σ → one-shot Tweedie PSNR gain in dB on the images (unclipped, as `adp eval denoise`).</param>
/// <param name="NaturalAccuracy">defended accuracy on the clean images (mean softmax); null when not measured (S = 0).</param>
/// <param name="TransferAccuracy">defended accuracy on preprocessor-blind PGD examples of the bare classifier (mean softmax);
/// null when not measured (S = 0).</param>
public sealed record SnapshotPoint(string File, long Iteration, WeightsChoice Weights, IReadOnlyDictionary<double, double> DenoiseGain,
    double? NaturalAccuracy, double? TransferAccuracy);

/// <summary>
/// Measures score-model snapshots on the validation split (never the test split): one-shot denoising gain at several σ,
/// and the natural and transfer-attack accuracy of the defended classifier. The transfer attack (PGD on the bare
/// classifier) does not depend on the score model, so its examples are computed once and every snapshot defends the same
/// inputs; the purification noise is per image (seed, index), so every snapshot also sees the same noise.
/// With a folder, every measured point is stored at once (snapshots.json) and a rerun with the same fingerprint measures
/// only snapshots not stored yet (identified by file content), so a curve grows as a training writes snapshots and a
/// killed measurement loses at most the point in progress.
/// </summary>
public sealed class SnapshotCurve
{
    /// <summary>What a curve folder was measured with; a rerun must match it field for field.</summary>
    public sealed record Fingerprint(string Data, string ClassifierSha256, PurifierSettings Purifier, int Runs, string Attack, long Seed)
        : IMeasurementFingerprint;

    /// <summary>A measured point and the SHA-256 of the snapshot file it was measured on.</summary>
    public sealed record StoredPoint(string Sha256, SnapshotPoint Point);

    private sealed class State
    {
        public Fingerprint? Fingerprint { get; set; }
        public List<StoredPoint> Points { get; set; } = [];
    }

    private readonly nn.Module<Tensor, Tensor> _classifier;
    private readonly ImageDataset _data;
    private readonly PurifierSettings _purifier;
    private readonly AttackSpec _transfer;
    private readonly long _seed;
    private readonly Device _device;
    private readonly int _runs;
    private readonly string? _dir;
    private readonly State _state;
    private Tensor? _adv;

    /// <param name="dir">folder for snapshots.json (null: nothing stored, nothing reused).</param>
    /// <param name="fingerprint">identifies images, classifier, purifier, runs, attack and seed; required with a folder.</param>
    /// <exception cref="AdpException">S &lt; 0; the folder holds a curve with another fingerprint, or an unreadable snapshots.json.</exception>
    public SnapshotCurve(nn.Module<Tensor, Tensor> classifier, ImageDataset data, PurifierSettings purifier, int runs,
        AttackSpec transfer, long seed, Device device, string? dir = null, Fingerprint? fingerprint = null)
    {
        (_classifier, _data, _purifier, _transfer, _seed, _device, _dir) = (classifier, data, purifier, transfer, seed, device, dir);
        _runs = runs >= 0 ? runs : throw new AdpException($"snapshot curve: purification runs S must be ≥ 0, got {runs}");
        _state = new State { Fingerprint = fingerprint };
        if (dir is null) return;
        if (fingerprint is null) throw new ArgumentException("a stored snapshot curve needs a fingerprint", nameof(fingerprint));
        var path = StatePath;
        if (!File.Exists(path)) return;
        try { _state = System.Text.Json.JsonSerializer.Deserialize<State>(File.ReadAllText(path), Json) ?? throw new System.Text.Json.JsonException("null"); }
        catch (System.Text.Json.JsonException e)
        {
            throw new AdpException($"{path}: not a snapshot-curve state file (unreadable JSON at {e.Path ?? "$"}, line {(e.LineNumber ?? 0) + 1})");
        }
        if (_state.Fingerprint is null || _state.Points is null ||
            _state.Points.Any(p => p?.Sha256 is null || p.Point?.File is null || p.Point.DenoiseGain is null || !Enum.IsDefined(p.Point.Weights)))
            throw new AdpException($"{path}: not a snapshot-curve state file (a fingerprint and points with file, weights and gains expected)");
        if (_state.Fingerprint != fingerprint)
            throw new AdpException($"{path}: holds a curve measured with other settings ({Differences(_state.Fingerprint, fingerprint)}); choose another --out");
    }

    private string StatePath => Path.Combine(_dir!, "snapshots.json");

    // A diverged snapshot has NaN gains; they must be stored (and read back) like any other number.
    private static readonly System.Text.Json.JsonSerializerOptions Json = new()
    {
        WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Files of stored points (measured in earlier runs into this folder) whose content is none of <paramref name="files"/>:
    /// the curve shows them too, so a caller can say so.</summary>
    public IReadOnlyList<string> StoredOnly(IEnumerable<string> files)
    {
        var given = files.Select(RobustEvaluation.Sha256).ToHashSet();
        return _state.Points.Where(p => !given.Contains(p.Sha256)).Select(p => p.Point.File).Distinct().ToList();
    }

    private static string Differences(Fingerprint? stored, Fingerprint now) => MeasurementFingerprint.Differences(stored, now,
        stored is not null && stored.Purifier != now.Purifier
            ? $"purifier {stored.Purifier.Describe()}, not {now.Purifier.Describe()}" : null);

    /// <summary>The points of this curve: every point stored in the folder (earlier runs included) and those measured now.</summary>
    public IReadOnlyList<SnapshotPoint> Points => _state.Points.Select(p => p.Point).ToList();

    /// <summary>The transfer-attacked images (computed on first use).</summary>
    public Tensor Adversarial() => _adv ??= TransferExamples.Compute(_classifier, _data, _transfer, _seed, _device);

    /// <summary>Measures one snapshot with the given weights and adds it to <see cref="Points"/>; with S = 0 runs only the
    /// denoising gain (e.g. a CIFAR-10 curve on 1,000 test images, where the defended accuracy of every snapshot would
    /// cost hours). A point stored in the folder for the same file content, weights and σ values is reused instead of measured.</summary>
    public SnapshotPoint Measure(string file, WeightsChoice weights, IReadOnlyList<double> sigmas, int batch = 100) =>
        Measure(file, weights, sigmas, out _, batch);

    /// <summary>As <see cref="Measure(string, WeightsChoice, IReadOnlyList{double}, int)"/>; <paramref name="reused"/> says
    /// whether the point came from the folder.</summary>
    public SnapshotPoint Measure(string file, WeightsChoice weights, IReadOnlyList<double> sigmas, out bool reused, int batch = 100)
    {
        string sha = RobustEvaluation.Sha256(file);
        var stored = _state.Points.FirstOrDefault(p => p.Sha256 == sha && p.Point.Weights == weights && sigmas.All(p.Point.DenoiseGain.ContainsKey));
        reused = stored is not null;
        if (stored is not null) return stored.Point;
        var (net, info) = ScoreModelFile.Load(file, weights, _device);
        using var _ = net;
        ModelChecks.RequireSameDataset(file, info.Dataset, "the curve's images", _data.Spec.Name);
        foreach (var p in net.parameters()) p.requires_grad_(false);
        var gains = sigmas.ToDictionary(s => s, s => DenoiseEvaluation.Run(net, _data, s, batch, _seed, _device).Gain);
        SnapshotPoint point;
        if (_runs == 0) point = new SnapshotPoint(file, info.Iteration, weights, gains, null, null);
        else
        {
            var defense = new DefendedClassifier(_classifier, new AdaptiveStepPurifier(net, _purifier), _runs);
            double Accuracy(Tensor images, long purpose) =>
                (double)TransferExamples.DefendedCorrect(defense, images, _data.Labels, _seed, purpose, batch) / _data.Count;
            using var clean = _data.Images(0, _data.Count, _device);
            point = new SnapshotPoint(file, info.Iteration, weights, gains, Accuracy(clean, 21), Accuracy(Adversarial(), 22));
        }
        _state.Points.RemoveAll(p => p.Sha256 == sha && p.Point.Weights == weights);
        _state.Points.Add(new StoredPoint(sha, point));
        if (_dir is not null)
        {
            Directory.CreateDirectory(_dir);
            AtomicFile.Write(StatePath, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(_state, Json));
        }
        return point;
    }

    /// <summary>Writes curve.csv, curve-accuracy.png (when accuracies were measured) and curve-denoise.png (against training
    /// iterations).</summary>
    public void Write(string dir, string title)
    {
        Directory.CreateDirectory(dir);
        var sigmas = Points.SelectMany(p => p.DenoiseGain.Keys).Distinct().Order().ToList();
        var csv = new StringBuilder("file,iteration,weights," + string.Join(",", sigmas.Select(s => $"gain_db_sigma_{F(s)}")) +
                                    ",natural_accuracy,transfer_accuracy\n");
        foreach (var p in Points.OrderBy(p => p.Weights).ThenBy(p => p.Iteration))
            csv.AppendLine($"\"{p.File}\",{p.Iteration},{p.Weights}," + string.Join(",", sigmas.Select(s => F(p.DenoiseGain.GetValueOrDefault(s, double.NaN)))) +
                           $",{(p.NaturalAccuracy is { } n ? F(n) : "")},{(p.TransferAccuracy is { } t ? F(t) : "")}");
        AtomicFile.Write(Path.Combine(dir, "curve.csv"), Encoding.UTF8.GetBytes(csv.ToString()));

        var accuracy = new Plot();
        var denoise = new Plot();
        // One line per training run and weights: snapshots of different trainings (e.g. a shipped model beside a new run's
        // snapshots) are not one curve, even where their iteration counts coincide.
        var runs = Points.Select(p => TrainingRun(p.File)).Distinct().ToList();
        foreach (var run in runs)
        foreach (var w in Points.Select(p => p.Weights).Distinct())
        {
            var pts = Points.Where(p => p.Weights == w && TrainingRun(p.File) == run).OrderBy(p => p.Iteration).ToList();
            if (pts.Count == 0) continue;
            string label = runs.Count > 1 ? $"{run}, {w} weights" : $"{w} weights";
            double[] it = pts.Select(p => (double)p.Iteration).ToArray();
            var measured = pts.Where(p => p.NaturalAccuracy is not null).ToList();
            if (measured.Count > 0)
            {
                double[] itm = measured.Select(p => (double)p.Iteration).ToArray();
                accuracy.Add.Scatter(itm, measured.Select(p => 100 * p.NaturalAccuracy!.Value).ToArray()).LegendText = $"natural, {label}";
                accuracy.Add.Scatter(itm, measured.Select(p => 100 * p.TransferAccuracy!.Value).ToArray()).LegendText = $"transfer attack, {label}";
            }
            foreach (var s in sigmas)
                denoise.Add.Scatter(it, pts.Select(p => p.DenoiseGain.GetValueOrDefault(s, double.NaN)).ToArray()).LegendText = $"σ = {F(s)}, {label}";
        }
        accuracy.Axes.Bottom.Label.Text = denoise.Axes.Bottom.Label.Text = "training iteration";
        accuracy.Axes.Left.Label.Text = "defended accuracy (%)";
        denoise.Axes.Left.Label.Text = "one-shot denoising gain (dB)";
        accuracy.ShowLegend(Alignment.MiddleRight);  // natural accuracy runs along the top, transfer accuracy along the bottom
        denoise.ShowLegend();
        accuracy.Title(title);
        denoise.Title(title);
        var accuracyPng = Path.Combine(dir, "curve-accuracy.png");
        if (Points.Any(p => p.NaturalAccuracy is not null)) Plots.SavePng(accuracy, accuracyPng, 1000, 500);
        else File.Delete(accuracyPng);  // a plot of an earlier run would contradict this curve.csv
        Plots.SavePng(denoise, Path.Combine(dir, "curve-denoise.png"), 1000, 500);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);

    /// <summary>The training a snapshot file belongs to, by its name: <c>train score --keep-every</c> writes
    /// <c>NAME.iterK.ckpt</c> beside the checkpoint <c>NAME.ckpt</c>, so both give NAME; any other file is its own run.</summary>
    internal static string TrainingRun(string file) =>
        System.Text.RegularExpressions.Regex.Replace(Path.GetFileNameWithoutExtension(file), @"\.iter\d+$", "");
}
