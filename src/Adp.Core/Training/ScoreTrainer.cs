using TorchSharp;
using System.Diagnostics;
using System.Text.Json;
using Adp.Data;
using Adp.IO;
using Adp.Models;
using static TorchSharp.torch;

namespace Adp.Training;

/// <summary>Settings of a score-model training run (paper defaults where they apply: Adam, EMA 0.999).</summary>
public sealed record ScoreTrainingOptions
{
    public required string Dataset { get; init; }
    public required ScoreModelConfig Model { get; init; }
    public long Iterations { get; init; } = 10000;
    public int BatchSize { get; init; } = 128;
    public double LearningRate { get; init; } = 1e-4;
    public double EmaRate { get; init; } = 0.999;
    public long Seed { get; init; } = 0;
    public bool HorizontalFlip { get; init; } = true;
    public int CheckpointEvery { get; init; } = 1000;
    /// <summary>Which weights purification uses by default (the paper used the non-EMA ones).</summary>
    public WeightsChoice PurificationWeights { get; init; } = WeightsChoice.Model;
    /// <summary>Use only the first N training images (0 = all).</summary>
    public int TrainImages { get; init; } = 0;
    public string Device { get; init; } = "cpu";
    /// <summary>Clip the gradient to this global ℓ2 norm before each step (0 = none); may be changed on resume.</summary>
    public double GradClip { get; init; } = 0;
    /// <summary>Also keep a snapshot without optimizer state (<c>OUT.iterN.ckpt</c>) every N iterations (0 = none), for
    /// measuring purification against training time.</summary>
    public int KeepEvery { get; init; } = 0;
}

/// <summary>
/// Trains an NCSNv2 with DSM: Adam, EMA of the weights, seeded per-iteration randomness (so a resumed run is
/// identical to an uninterrupted one), atomic checkpoints every N iterations, at the end and on cancellation,
/// and a TensorBoard log next to the checkpoint.
/// </summary>
public sealed class ScoreTrainer(ScoreTrainingOptions options, ImageDataset data, string checkpointPath)
{
    public const string OptionsKey = "training";

    /// <summary>
    /// How many of the validation split's images (the last <paramref name="validationImages"/> of the data set's
    /// <paramref name="trainSplitCount"/> training images) a score model trained on, from its recorded options (metadata
    /// <see cref="OptionsKey"/>: TrainImages, the first N training images; 0 = all); null when the checkpoint has no record.
    /// Unlike a classifier's, this is not refused: DSM never sees labels, but a purifier tuned with a score model that
    /// denoises the validation images from memory may look better there than on test.
    /// </summary>
    public static int? ValidationOverlap(IReadOnlyDictionary<string, string> metadata, int validationImages, int trainSplitCount)
    {
        if (!metadata.TryGetValue(OptionsKey, out var json)) return null;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            if (!doc.RootElement.TryGetProperty(nameof(ScoreTrainingOptions.TrainImages), out var t) || !t.TryGetInt32(out int n)) return null;
            int trained = n > 0 ? Math.Min(n, trainSplitCount) : trainSplitCount;
            return Math.Clamp(trained - (trainSplitCount - validationImages), 0, validationImages);
        }
        catch (System.Text.Json.JsonException) { return null; }
    }

    public long Iteration { get; private set; }
    public double LastLoss { get; private set; } = double.NaN;

    /// <summary>Runs until <see cref="ScoreTrainingOptions.Iterations"/> or cancellation; returns the last iteration reached.
    /// With <paramref name="resume"/>, continues from the checkpoint at <c>checkpointPath</c>.</summary>
    public long Run(bool resume, Action<TrainingProgress>? progress = null, CancellationToken cancel = default, string? tensorboardDir = null)
    {
        var device = torch.device(options.Device);
        torch.manual_seed((long)Seeds.MixTorch(options.Seed, 3));  // weight initialization follows the seed
        var net = new Ncsnv2(options.Model);
        var ema = new Ncsnv2(options.Model);
        net.ChannelsLast = ema.ChannelsLast = false;  // see Ncsnv2.ChannelsLast
        net.to(device); ema.to(device);
        using var sigmas = tensor(options.Model.Sigmas().Select(s => (float)s).ToArray(), device: device);
        var opt = optim.Adam(net.parameters(), options.LearningRate);
        if (resume) LoadState(net, ema, opt);
        else CopyWeights(net, ema);
        net.train();

        int n = options.TrainImages > 0 ? Math.Min(options.TrainImages, data.Count) : data.Count;
        var schedule = new BatchSchedule(n, options.BatchSize, options.Seed);
        var aug = new Augmentation(HorizontalFlip: options.HorizontalFlip && data.Spec.HorizontalFlip);
        var writer = tensorboardDir is null ? null : utils.tensorboard.SummaryWriter(tensorboardDir);
        var clock = Stopwatch.StartNew();
        long startIter = Iteration;
        while (Iteration < options.Iterations && !cancel.IsCancellationRequested)
        {
            using (var scope = NewDisposeScope())
            {
                using var g = schedule.GeneratorFor(Iteration);
                using var idx = tensor(schedule.Indices(Iteration));
                var x = aug.Apply(data.Images(idx), g).to(device);
                opt.zero_grad();
                var loss = DsmLoss.Sample(net, x, sigmas, g);
                using (NativeRuntime.Backward()) loss.backward();
                double value = Divergence.ClipAndCheck(loss, net.parameters(), options.GradClip, Iteration, checkpointPath,
                    options.GradClip > 0 ? $"--grad-clip below {options.GradClip}" : "--grad-clip 1", "--grad-clip 1 or a smaller --lr");
                NativeRuntime.WithoutCollection(() => opt.step());  // TorchSharp's step converts scalars implicitly
                UpdateEma(net, ema, options.EmaRate);
                LastLoss = value;
            }
            Iteration++;
            double ips = (Iteration - startIter) * schedule.BatchSize / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            writer?.add_scalar("dsm_loss", (float)LastLoss, (int)Iteration);
            progress?.Invoke(new TrainingProgress(Iteration, options.Iterations, LastLoss, ips));
            if (options.CheckpointEvery > 0 && Iteration % options.CheckpointEvery == 0 && Iteration < options.Iterations)
                Save(net, ema, opt);
            if (options.KeepEvery > 0 && Iteration % options.KeepEvery == 0)
                Save(net, ema, null, SnapshotPath(checkpointPath, Iteration));
        }
        Save(net, ema, opt);
        return Iteration;
    }

    private static void CopyWeights(nn.Module from, nn.Module to)
    {
        using var _ = no_grad();
        var dst = to.state_dict();
        foreach (var (k, v) in from.state_dict()) dst[k].copy_(v);
    }

    private static void UpdateEma(nn.Module net, nn.Module ema, double rate)
    {
        using var _ = no_grad();
        var dst = ema.state_dict();
        using Scalar keep = rate.ToScalar(), take = (1 - rate).ToScalar();  // held: see RootedScalars
        foreach (var (k, v) in net.state_dict()) dst[k].mul_(keep).add_(v, take);
    }

    /// <summary>Where <c>--keep-every</c> snapshots go: next to the checkpoint, named by iteration.</summary>
    public static string SnapshotPath(string checkpointPath, long iteration) =>
        Path.ChangeExtension(checkpointPath, null) + $".iter{iteration}.ckpt";

    private void Save(Ncsnv2 net, Ncsnv2 ema, optim.Optimizer? opt, string? path = null)
    {
        var meta = new Dictionary<string, string>
        {
            ["config"] = JsonSerializer.Serialize(options.Model),
            ["dataset"] = options.Dataset,
            ["iteration"] = Iteration.ToString(),
            ["seed"] = options.Seed.ToString(),
            ["final_loss"] = LastLoss.ToString("R"),
            ["purification_weights"] = options.PurificationWeights == WeightsChoice.Ema ? "ema" : "model",
            ["sigmas"] = string.Join(",", options.Model.Sigmas().Select(s => s.ToString("G6"))),
            [OptionsKey] = JsonSerializer.Serialize(options),
            ["saved_utc"] = DateTime.UtcNow.ToString("O"),
        };
        Checkpoint.Save(path ?? checkpointPath, ScoreModelFile.Kind, [("model.", net), ("ema.", ema)], meta,
            opt is null ? null : Checkpoint.OptimizerBytes(opt));
    }

    private void LoadState(Ncsnv2 net, Ncsnv2 ema, optim.Optimizer opt)
    {
        using var f = Checkpoint.Open(checkpointPath, ScoreModelFile.Kind);
        var saved = Checkpoint.ReadJson<ScoreModelConfig>(f, "config", "score-model configuration");
        if (saved != options.Model)
            throw new AdpException($"{checkpointPath}: checkpoint architecture {saved} differs from the requested {options.Model}");
        StateDictLoader.Load(net, f.Tensors, "model.", checkpointPath);
        StateDictLoader.Load(ema, f.Tensors, "ema.", checkpointPath);
        Checkpoint.RestoreOptimizer(opt, f);
        Iteration = Checkpoint.Integer(f, "iteration", -1);
        if (Iteration < 0) throw new AdpException($"{checkpointPath}: checkpoint metadata 'iteration' must be a non-negative integer");
        LastLoss = Checkpoint.Number(f, "final_loss", double.NaN);
    }

    /// <summary>The options a checkpoint was trained with (for `--resume` without repeating every flag).</summary>
    public static ScoreTrainingOptions ReadOptions(string checkpointPath)
    {
        using var f = Checkpoint.Open(checkpointPath, ScoreModelFile.Kind);
        var o = Checkpoint.ReadJson<ScoreTrainingOptions>(f, OptionsKey, "training options");
        string? bad = o.Model is null ? "no model configuration"
            : o.Iterations < 0 ? $"Iterations {o.Iterations}" : o.BatchSize < 1 ? $"BatchSize {o.BatchSize}"
            : !(o.LearningRate > 0) || double.IsInfinity(o.LearningRate) ? $"LearningRate {o.LearningRate}"
            : !(o.EmaRate >= 0 && o.EmaRate <= 1) ? $"EmaRate {o.EmaRate}" : o.CheckpointEvery < 0 ? $"CheckpointEvery {o.CheckpointEvery}"
            : o.KeepEvery < 0 ? $"KeepEvery {o.KeepEvery}" : o.TrainImages < 0 ? $"TrainImages {o.TrainImages}"
            : !(o.GradClip >= 0) ? $"GradClip {o.GradClip}" : !Enum.IsDefined(o.PurificationWeights) ? $"PurificationWeights {o.PurificationWeights}"
            : o.Dataset is null ? "no data set" : o.Device is null ? "no device" : null;
        if (bad is not null) throw new AdpException($"{checkpointPath}: invalid training options in the checkpoint ({bad})");
        try { o.Model!.Validate(); DatasetRegistry.Get(o.Dataset!); }
        catch (AdpException e) { throw new AdpException($"{checkpointPath}: invalid training options in the checkpoint ({e.Message})"); }
        return o;
    }
}
