using System.Globalization;
using System.Text;
using System.Text.Json;
using Adp.Attacks;
using Adp.Data;
using Adp.IO;
using Adp.Purification;
using ScottPlot;
using static TorchSharp.torch;

namespace Adp.Evaluation;

/// <summary>One purifier setting measured by <see cref="PresetTuning"/>: accuracies are fractions of the images (mean-softmax
/// rule over S runs) with 95% Wilson intervals over images. <paramref name="Purifier"/> is the variant's
/// <see cref="PurifierVariant.Key"/> ("adp" for ADP itself, and for points stored before variants were tuned);
/// <paramref name="MaxNetworkCalls"/> its <see cref="PurifierVariant.MaxNetworkCalls"/> per run (0 in such older points).</summary>
public sealed record TuningPoint(PurifierSettings Settings, long Images, long NaturalCorrect, long TransferCorrect, double Seconds,
    string Purifier = "adp", long MaxNetworkCalls = 0)
{
    public double Natural => (double)NaturalCorrect / Images;
    public double Transfer => (double)TransferCorrect / Images;

    /// <summary>Network calls per image per run at most; points stored before variants were tuned are ADP (2 per step).</summary>
    public long Cost => MaxNetworkCalls > 0 ? MaxNetworkCalls : 2L * Settings.Steps;
}

/// <summary>
/// Tunes the purifier on held-out images (issue #12 item 2): every setting of a grid (ADP's σ, T, λ, and the variants of
/// Variants.cs with theirs) defends the same clean images and the same transfer-attacked images (PGD on the bare classifier,
/// computed once: it does not depend on the purifier), with the same per-image noise, so settings differ only by what they
/// are. The choice rule is the target: the highest transfer accuracy among settings whose natural accuracy is at most
/// <c>maxNaturalDrop</c> below the bare classifier's; ties go to the higher natural accuracy, then to the cheaper purifier
/// (fewer network calls per run). Results are stored after each setting (tune.json, atomic), and a
/// rerun into the same folder measures only the settings not stored yet; a folder made with other models, images, runs,
/// attack or seed is refused.
/// </summary>
public sealed class PresetTuning
{
    private readonly nn.Module<Tensor, Tensor> _classifier;
    private readonly nn.Module<Tensor, Tensor> _score;
    private readonly ImageDataset _data;
    private readonly int _runs;
    private readonly AttackSpec _transfer;
    private readonly long _seed;
    private readonly Device _device;
    private readonly string _dir;
    private readonly State _state;
    private Tensor? _adv;

    /// <summary>What a tuning folder was measured with; a rerun must match it field for field.</summary>
    public sealed record Fingerprint(string Data, string ClassifierSha256, string ScoreSha256, int Runs, string Attack, long Seed)
        : IMeasurementFingerprint;

    private sealed class State
    {
        public Fingerprint? Fingerprint { get; set; }
        public long BareCorrect { get; set; } = -1;
        public long BareTransferCorrect { get; set; } = -1;
        public List<TuningPoint> Points { get; set; } = [];
    }

    /// <param name="classifier">the classifier (eval mode, frozen), images in [0, 1] of the data set's shape.</param>
    /// <param name="score">the score network h(x) ≈ −z/σ·σ (NCSNv2 output, METHOD.md §1), frozen.</param>
    /// <param name="data">the held-out images (use the validation split, never the test split).</param>
    /// <param name="runs">purification runs S per image (mean-softmax rule).</param>
    /// <param name="transfer">the transfer attack (target bare; its ε, steps, iterations).</param>
    /// <param name="fingerprint">identifies the models, images, runs, attack and seed; compared with a stored folder.</param>
    /// <exception cref="AdpException">the folder holds a tuning made with another fingerprint, or its tune.json is unreadable.</exception>
    public PresetTuning(nn.Module<Tensor, Tensor> classifier, nn.Module<Tensor, Tensor> score, ImageDataset data, int runs, AttackSpec transfer,
        long seed, Device device, string dir, Fingerprint fingerprint)
    {
        (_classifier, _score, _data, _runs, _transfer, _seed, _device, _dir) = (classifier, score, data, runs, transfer, seed, device, dir);
        var path = StatePath;
        if (File.Exists(path))
        {
            try { _state = JsonSerializer.Deserialize<State>(File.ReadAllText(path)) ?? throw new JsonException("null"); }
            catch (JsonException e) { throw new AdpException($"{path}: not a tuning state file ({e.Message.Split('\n')[0]})"); }
            if (_state.Fingerprint != fingerprint)
                throw new AdpException($"{path}: holds a tuning made with other settings ({Differences(_state.Fingerprint, fingerprint)}); choose another --out");
        }
        else _state = new State { Fingerprint = fingerprint };
    }

    private static string Differences(Fingerprint? stored, Fingerprint now) => MeasurementFingerprint.Differences(stored, now,
        stored is not null && stored.ScoreSha256 != now.ScoreSha256 ? "another score-model file or weights" : null);

    private string StatePath => Path.Combine(_dir, "tune.json");

    /// <summary>Settings measured so far (stored ones included), in the order measured.</summary>
    public IReadOnlyList<TuningPoint> Points => _state.Points;

    /// <summary>Bare-classifier accuracy on the clean images (fraction).</summary>
    public double BareAccuracy => EnsureBare().Clean;

    /// <summary>Bare-classifier accuracy on the transfer-attacked images (fraction).</summary>
    public double BareTransferAccuracy => EnsureBare().Transfer;

    private (double Clean, double Transfer) EnsureBare()
    {
        if (_state.BareCorrect < 0)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            long Correct(Tensor x) => _classifier.call(x).argmax(1).cpu().eq(_data.Labels).sum().item<long>();
            _state.BareCorrect = Correct(_data.Images(0, _data.Count, _device));
            _state.BareTransferCorrect = Correct(Adversarial());
            Save();
        }
        return ((double)_state.BareCorrect / _data.Count, (double)_state.BareTransferCorrect / _data.Count);
    }

    /// <summary>The transfer-attacked images, shape [N, C, H, W] in [0, 1] (computed once per process).</summary>
    public Tensor Adversarial() => _adv ??= TransferExamples.Compute(_classifier, _data, _transfer, _seed, _device);

    /// <summary>The stored point of a setting, or null. Settings fields the purifier does not read (T for Tweedie, σ for
    /// re-injection) do not count: settings that differ only there are one purifier.</summary>
    public TuningPoint? Stored(PurifierSettings settings, PurifierVariant? variant = null)
    {
        variant ??= PurifierVariant.Adp;
        var canonical = variant.Canonical(settings);
        return _state.Points.FirstOrDefault(p => p.Purifier == variant.Key && variant.Canonical(p.Settings) == canonical);
    }

    /// <summary>Measures one setting of ADP (<paramref name="variant"/> null) or of a variant, or returns the stored point for
    /// it, and stores it.</summary>
    /// <exception cref="AdpException">invalid settings or variant parameters.</exception>
    public TuningPoint Measure(PurifierSettings settings, int batch = 100, PurifierVariant? variant = null)
    {
        variant ??= PurifierVariant.Adp;
        var purifier = variant.Create(_score, settings);  // validates both
        if (Stored(settings, variant) is { } stored) return stored;
        EnsureBare();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var defense = new DefendedClassifier(_classifier, purifier, _runs);
        long natural;
        using (var clean = _data.Images(0, _data.Count, _device))
            natural = TransferExamples.DefendedCorrect(defense, clean, _data.Labels, _seed, 21, batch);
        var point = new TuningPoint(settings, _data.Count, natural,
            TransferExamples.DefendedCorrect(defense, Adversarial(), _data.Labels, _seed, 22, batch), clock.Elapsed.TotalSeconds, variant.Key,
            variant.MaxNetworkCalls(settings));
        _state.Points.Add(point);
        Save();
        return point;
    }

    private void Save()
    {
        Directory.CreateDirectory(_dir);
        AtomicFile.Write(StatePath, JsonSerializer.SerializeToUtf8Bytes(_state, new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The tuning rule: among points with natural accuracy ≥ bare − <paramref name="maxNaturalDrop"/> (fractions), the
    /// highest transfer accuracy; ties → higher natural, then fewer network calls. Null when no point qualifies.</summary>
    public static TuningPoint? Choose(IEnumerable<TuningPoint> points, double bareAccuracy, double maxNaturalDrop) =>
        points.Where(p => p.Natural >= bareAccuracy - maxNaturalDrop - 1e-12)
            .OrderByDescending(p => p.Transfer).ThenByDescending(p => p.Natural).ThenBy(p => p.Cost)
            .FirstOrDefault();

    /// <summary>Points on the natural-vs-transfer Pareto front (no other point at least as good in both and better in one).</summary>
    public static List<TuningPoint> ParetoFront(IReadOnlyList<TuningPoint> points) =>
        points.Where(p => !points.Any(q => q.Natural >= p.Natural && q.Transfer >= p.Transfer && (q.Natural > p.Natural || q.Transfer > p.Transfer)))
            .OrderBy(p => p.Natural).ToList();

    /// <summary>Writes tune.csv and tradeoff.png (natural vs transfer accuracy of every setting, Pareto front, bare classifier,
    /// the chosen point) into the folder.</summary>
    public void Write(string title, TuningPoint? chosen)
    {
        Directory.CreateDirectory(_dir);
        var csv = new StringBuilder("sigma,steps,lambda,delta,alpha_min,alpha_max,tau,faithful,images,natural_accuracy,natural_low,natural_high," +
                                    "transfer_accuracy,transfer_low,transfer_high,seconds,purifier,pareto,chosen\n");
        var front = ParetoFront(_state.Points);
        foreach (var p in _state.Points)
        {
            var s = p.Settings;
            var (nl, nh) = Statistics.Wilson(p.NaturalCorrect, p.Images);
            var (tl, th) = Statistics.Wilson(p.TransferCorrect, p.Images);
            csv.AppendLine(string.Join(",", F(s.Sigma), s.Steps.ToString(CultureInfo.InvariantCulture), F(s.Lambda), F(s.Delta), F(s.AlphaMin),
                F(s.AlphaMax), F(s.Tau), s.Faithful ? "true" : "false", p.Images.ToString(CultureInfo.InvariantCulture), F(p.Natural), F(nl), F(nh),
                F(p.Transfer), F(tl), F(th), F(Math.Round(p.Seconds, 1)), p.Purifier, front.Contains(p) ? "true" : "false", p == chosen ? "true" : "false"));
        }
        AtomicFile.Write(Path.Combine(_dir, "tune.csv"), Encoding.UTF8.GetBytes(csv.ToString()));

        var plot = new Plot();
        var all = plot.Add.ScatterPoints(_state.Points.Select(p => 100 * p.Natural).ToArray(), _state.Points.Select(p => 100 * p.Transfer).ToArray());
        all.LegendText = _state.Points.All(p => p.Purifier == "adp") ? "settings (σ, T, λ)" : "settings (purifier, σ, T, λ)";
        foreach (var p in _state.Points)
        {
            bool variedCap = _state.Points.Any(q => q.Settings.AlphaMax != p.Settings.AlphaMax);
            var label = plot.Add.Text(Label(p) + (variedCap ? $" αmax{F(p.Settings.AlphaMax)}" : ""), 100 * p.Natural, 100 * p.Transfer);
            label.LabelFontSize = 9;
        }
        if (front.Count > 1)
        {
            var line = plot.Add.Scatter(front.Select(p => 100 * p.Natural).ToArray(), front.Select(p => 100 * p.Transfer).ToArray());
            line.LegendText = "Pareto front";
        }
        var bare = plot.Add.VerticalLine(100 * BareAccuracy);
        bare.LegendText = $"bare classifier, clean ({100 * BareAccuracy:F1}%)";
        if (chosen is not null)
        {
            var c = plot.Add.ScatterPoints(new[] { 100 * chosen.Natural }, new[] { 100 * chosen.Transfer });
            c.MarkerSize = 14;
            c.LegendText = "chosen";
        }
        plot.Axes.Bottom.Label.Text = "natural accuracy of the defense (%)";
        plot.Axes.Left.Label.Text = "accuracy under the transfer attack (%)";
        plot.Title(title);
        // Labels sit right of their points and the best settings crowd the right edge (natural accuracy near the bare line):
        // leave room on the right, and keep the legend outside the data, where no point or label can hide under it.
        var xs = _state.Points.Select(p => 100 * p.Natural).Append(100 * BareAccuracy).ToList();
        double xMin = xs.Min(), xMax = xs.Max();
        double span = Math.Max(xMax - xMin, 0.5);
        plot.Axes.SetLimitsX(xMin - 0.05 * span, xMax + 0.25 * span);
        plot.ShowLegend(Edge.Bottom);
        Plots.SavePng(plot, Path.Combine(_dir, "tradeoff.png"), 1000, 650);
    }

    /// <summary>A point's short name on the plot and terminal: the variant's key (unless plain ADP) and the settings it reads
    /// (<see cref="PurifierVariant.UsesSigma"/>, <see cref="PurifierVariant.UsesSteps"/>).</summary>
    public static string Label(TuningPoint p)
    {
        var s = p.Settings;
        var reads = new PurifierVariant { Kind = PurifierVariant.ParseKind(p.Purifier.Split(' ')[0]) };
        var parts = new List<string>();
        if (reads.Kind != PurifierKind.Adp) parts.Add(p.Purifier);
        if (reads.UsesSigma) parts.Add($"σ{F(s.Sigma)}");
        if (reads.UsesSteps) parts.Add($"T{s.Steps} λ{F(s.Lambda)}");
        return string.Join(" ", parts);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
