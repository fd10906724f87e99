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
/// </summary>
public sealed class SnapshotCurve(nn.Module<Tensor, Tensor> classifier, ImageDataset data, PurifierSettings purifier, int runs,
    AttackSpec transfer, long seed, Device device)
{
    public List<SnapshotPoint> Points { get; } = [];
    private Tensor? _adv;
    private readonly int _runs = runs >= 0 ? runs : throw new AdpException($"snapshot curve: purification runs S must be ≥ 0, got {runs}");

    /// <summary>The transfer-attacked images (computed on first use).</summary>
    public Tensor Adversarial() => _adv ??= TransferExamples.Compute(classifier, data, transfer, seed, device);

    /// <summary>Measures one snapshot with the given weights and adds it to <see cref="Points"/>; with S = 0 runs only the
    /// denoising gain (e.g. a CIFAR-10 curve on 1,000 test images, where the defended accuracy of every snapshot would
    /// cost hours).</summary>
    public SnapshotPoint Measure(string file, WeightsChoice weights, IReadOnlyList<double> sigmas, int batch = 100)
    {
        var (net, info) = ScoreModelFile.Load(file, weights, device);
        using var _ = net;
        foreach (var p in net.parameters()) p.requires_grad_(false);
        var gains = sigmas.ToDictionary(s => s, s => DenoiseEvaluation.Run(net, data, s, batch, seed, device).Gain);
        SnapshotPoint point;
        if (_runs == 0) point = new SnapshotPoint(file, info.Iteration, weights, gains, null, null);
        else
        {
            var defense = new DefendedClassifier(classifier, new AdaptiveStepPurifier(net, purifier), _runs);
            double Accuracy(Tensor images, long purpose) =>
                (double)TransferExamples.DefendedCorrect(defense, images, data.Labels, seed, purpose, batch) / data.Count;
            using var clean = data.Images(0, data.Count, device);
            point = new SnapshotPoint(file, info.Iteration, weights, gains, Accuracy(clean, 21), Accuracy(Adversarial(), 22));
        }
        Points.Add(point);
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
        foreach (var w in Points.Select(p => p.Weights).Distinct())
        {
            var pts = Points.Where(p => p.Weights == w).OrderBy(p => p.Iteration).ToList();
            double[] it = pts.Select(p => (double)p.Iteration).ToArray();
            var measured = pts.Where(p => p.NaturalAccuracy is not null).ToList();
            if (measured.Count > 0)
            {
                double[] itm = measured.Select(p => (double)p.Iteration).ToArray();
                accuracy.Add.Scatter(itm, measured.Select(p => 100 * p.NaturalAccuracy!.Value).ToArray()).LegendText = $"natural, {w} weights";
                accuracy.Add.Scatter(itm, measured.Select(p => 100 * p.TransferAccuracy!.Value).ToArray()).LegendText = $"transfer attack, {w} weights";
            }
            foreach (var s in sigmas)
                denoise.Add.Scatter(it, pts.Select(p => p.DenoiseGain.GetValueOrDefault(s, double.NaN)).ToArray()).LegendText = $"σ = {F(s)}, {w} weights";
        }
        accuracy.Axes.Bottom.Label.Text = denoise.Axes.Bottom.Label.Text = "training iteration";
        accuracy.Axes.Left.Label.Text = "defended accuracy (%)";
        denoise.Axes.Left.Label.Text = "one-shot denoising gain (dB)";
        accuracy.ShowLegend();
        denoise.ShowLegend();
        accuracy.Title(title);
        denoise.Title(title);
        var accuracyPng = Path.Combine(dir, "curve-accuracy.png");
        if (Points.Any(p => p.NaturalAccuracy is not null)) Plots.SavePng(accuracy, accuracyPng, 1000, 500);
        else File.Delete(accuracyPng);  // a plot of an earlier run would contradict this curve.csv
        Plots.SavePng(denoise, Path.Combine(dir, "curve-denoise.png"), 1000, 500);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}
