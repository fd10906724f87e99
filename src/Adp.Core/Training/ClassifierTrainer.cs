using System.Diagnostics;
using System.Text.Json;
using Adp.Data;
using Adp.IO;
using Adp.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Adp.Training;

public enum OptimizerKind { Sgd, Adam }
public enum LrSchedule { Constant, Step, Cosine, OneCycle }

/// <summary>Settings of a classifier training run. Defaults follow the paper's WRN recipe where it applies
/// (SGD momentum 0.9, wd 5e-4, lr 0.1 ×0.2 at 30/60/80% of training).</summary>
public sealed record ClassifierTrainingOptions
{
    public required string Dataset { get; init; }
    public required ClassifierConfig Model { get; init; }
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 128;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;
    public double LearningRate { get; init; } = 0.1;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    public bool Nesterov { get; init; } = false;
    public LrSchedule Schedule { get; init; } = LrSchedule.Step;
    /// <summary>Step schedule: fractions of training at which the rate is multiplied by <see cref="Gamma"/>.</summary>
    public double[] Milestones { get; init; } = [0.3, 0.6, 0.8];
    public double Gamma { get; init; } = 0.2;
    public bool HorizontalFlip { get; init; } = false;
    public int CropPadding { get; init; } = 0;
    /// <summary>The last N training images are held out for validation (never the test split).</summary>
    public int ValidationImages { get; init; } = 5000;
    public int TrainImages { get; init; } = 0;
    public long Seed { get; init; } = 0;
    public int CheckpointEvery { get; init; } = 1000;
    public string Device { get; init; } = "cpu";
    /// <summary>Gaussian-noise augmentation: each training image becomes clip₀¹(x + σᵢz) with σᵢ uniform in
    /// [0, NoiseSigma] per image (0 = off), so the classifier learns the residual noise a purifier leaves while keeping
    /// clean accuracy.</summary>
    public double NoiseSigma { get; init; } = 0;
    /// <summary>PGD adversarial training (Madry et al. 2018): train on ℓ∞ PGD examples of radius AdvEpsilon (0 = off),
    /// AdvSteps steps of AdvStepSize (0: 2.5·ε/steps, Madry's choice), random start, CE loss, crafted against the
    /// current weights in evaluation mode.</summary>
    public double AdvEpsilon { get; init; } = 0;
    public int AdvSteps { get; init; } = 10;
    public double AdvStepSize { get; init; } = 0;
    /// <summary>ε warm-up: the radius grows linearly from 0 to AdvEpsilon over the first N epochs (0 = full radius from the
    /// start). Large radii (MNIST ε = 0.3) from random weights can stall at chance; a ramp is the usual remedy (Gowal et al.
    /// 2018, Wong et al. 2020). The step size scales with the current radius.</summary>
    public double AdvEpsilonRampEpochs { get; init; } = 0;
    /// <summary>With adversarial training: also report PGD accuracy on the first N validation images each epoch
    /// (same attack as training at the full radius; 0 = off, the default here so that checkpoints written before this
    /// option resume without it; the CLI asks for 500).</summary>
    public int AdvValidationImages { get; init; } = 0;
}

/// <summary>
/// Trains a classifier with cross-entropy: SGD or Adam, step / cosine / one-cycle schedules (TorchSharp's
/// schedulers, stepped per iteration), augmentation, validation accuracy per epoch on a held-out part of the
/// training set, seeded per-iteration randomness and atomic, resumable checkpoints like the score trainer's.
/// </summary>
public sealed class ClassifierTrainer(ClassifierTrainingOptions options, ImageDataset data, string checkpointPath)
{
    public const string OptionsKey = "training";
    public long Iteration { get; private set; }
    public double LastLoss { get; private set; } = double.NaN;
    public List<double> ValidationAccuracy { get; } = [];
    /// <summary>PGD accuracy on the first validation images per epoch (adversarial training only).</summary>
    public List<double> RobustValidationAccuracy { get; } = [];

    public int TrainCount => TrainCountFor(options.TrainImages, options.ValidationImages, data.Count);

    /// <summary>How many images a run trains on (the first ones) out of <paramref name="available"/>: the first
    /// <paramref name="trainImages"/> (0: all) less the <paramref name="validationImages"/> held out at the end.</summary>
    public static int TrainCountFor(int trainImages, int validationImages, int available) =>
        Math.Max(1, (trainImages > 0 ? Math.Min(trainImages, available) : available) - validationImages);

    /// <summary>
    /// Tuning on the validation split (the last <paramref name="validationImages"/> of the data set's
    /// <paramref name="trainSplitCount"/> training images) must not use images a classifier trained on. Its checkpoint records
    /// the training options (metadata <see cref="OptionsKey"/>: TrainImages, ValidationImages), from which
    /// <see cref="TrainCountFor"/> gives the images it trained on; only the rest are unseen. Checkpoints without that record
    /// are not checked.
    /// </summary>
    /// <param name="remedy">what the user can do, for the message (e.g. "pass --validation-images N or fewer"; {0} is N).</param>
    /// <exception cref="AdpException">the validation split reaches into images the classifier trained on.</exception>
    public static void RequireHeldOut(string modelPath, IReadOnlyDictionary<string, string> metadata, int validationImages, int trainSplitCount,
        string remedy = "pass --validation-images {0} or fewer")
    {
        if (!metadata.TryGetValue(OptionsKey, out var json)) return;
        int trainImages, heldOut;
        try
        {
            // Only the two counts are read (not the whole options record), so a record of an older layout is still checked.
            using var doc = System.Text.Json.JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (!root.TryGetProperty(nameof(ClassifierTrainingOptions.ValidationImages), out var v) || !v.TryGetInt32(out heldOut)) return;
            trainImages = root.TryGetProperty(nameof(ClassifierTrainingOptions.TrainImages), out var t) && t.TryGetInt32(out var n) ? n : 0;
        }
        catch (System.Text.Json.JsonException) { return; }
        int trained = TrainCountFor(trainImages, heldOut, trainSplitCount);
        int unseen = Math.Max(0, trainSplitCount - trained);
        if (validationImages <= unseen) return;
        throw new AdpException(unseen == 0
            ? $"--split validation: {modelPath} trained on every training image; evaluate it on the test split"
            : $"--split validation: {modelPath} trained on the first {trained} training images, so only the last {unseen} are unseen " +
              $"and {validationImages - unseen} of the last {validationImages} are images it saw; " + string.Format(remedy, unseen));
    }
    public long TotalIterations => (long)options.Epochs * Math.Max(1, TrainCount / Math.Min(options.BatchSize, TrainCount));

    public long Run(bool resume, Action<TrainingProgress>? progress = null, CancellationToken cancel = default, string? tensorboardDir = null)
    {
        if (options.ValidationImages < 0 || options.ValidationImages >= data.Count)
            throw new AdpException($"--validation-images: expected 0..{data.Count - 1}, got {options.ValidationImages}");
        var device = torch.device(options.Device);
        torch.manual_seed((long)Seeds.MixTorch(options.Seed, 3));
        var net = Classifier.Create(options.Model);
        net.to(device);
        optim.Optimizer opt = options.Optimizer == OptimizerKind.Sgd
            ? optim.SGD(net.parameters(), options.LearningRate, options.Momentum, weight_decay: options.WeightDecay, nesterov: options.Nesterov)
            : optim.Adam(net.parameters(), options.LearningRate, weight_decay: options.WeightDecay);
        if (resume)
        {
            LoadState(net, opt);
            // The restored state carries the decayed rate; schedulers start from the base rate and are replayed.
            foreach (var pg in opt.ParamGroups) pg.LearningRate = options.LearningRate;
        }
        var scheduler = CreateScheduler(opt);
        for (long i = 0; i < Iteration; i++) scheduler?.step();  // schedules are functions of the step count

        var schedule = new BatchSchedule(TrainCount, options.BatchSize, options.Seed);
        var aug = new Augmentation(options.HorizontalFlip && data.Spec.HorizontalFlip, options.CropPadding);
        var writer = tensorboardDir is null ? null : utils.tensorboard.SummaryWriter(tensorboardDir);
        long total = TotalIterations, start = Iteration;
        var clock = Stopwatch.StartNew();
        net.train();
        while (Iteration < total && !cancel.IsCancellationRequested)
        {
            using (var scope = NewDisposeScope())
            {
                torch.manual_seed((long)Seeds.MixTorch(options.Seed, Iteration, 4));  // dropout
                using var g = schedule.GeneratorFor(Iteration);
                var idx = tensor(schedule.Indices(Iteration));
                var x = aug.Apply(data.Images(idx), g).to(device);
                var y = data.Labels.index_select(0, idx).to(device);
                if (options.NoiseSigma > 0)
                {
                    var sigma = rand(new long[] { x.shape[0], 1, 1, 1 }, generator: g).Times(options.NoiseSigma);  // held: see RootedScalars
                    x = x.Plus(sigma.to(device) * randn(x.shape, generator: g).to(device)).ClampedToUnit();
                }
                if (options.AdvEpsilon > 0) x = Adversarial(net, x, y, g, AdvEpsilonAt(Iteration, schedule.BatchesPerEpoch));
                opt.zero_grad();
                // TorchSharp's BatchNorm counts batches in training mode with add_(1) and its optimizers' steps convert
                // scalars implicitly: temporaries the library does not hold. The whole step runs in one no-GC region (each
                // region start costs a full collection, ~0.2 ms on a small heap, so one per iteration, not one per call).
                double value = NativeRuntime.WithoutCollection(() =>
                {
                    var loss = F.cross_entropy(net.forward(x), y);
                    using (NativeRuntime.Backward()) loss.backward();
                    double v = Divergence.ClipAndCheck(loss, net.parameters(), 0, Iteration, checkpointPath, null, "a smaller --lr");
                    opt.step();
                    return v;
                });
                scheduler?.step();
                LastLoss = value;
            }
            Iteration++;
            writer?.add_scalar("train_loss", (float)LastLoss, (int)Iteration);
            string? note = null;
            if (Iteration % schedule.BatchesPerEpoch == 0 && options.ValidationImages > 0)
            {
                double acc = Accuracy(net, data, data.Count - options.ValidationImages, options.ValidationImages, device);
                ValidationAccuracy.Add(acc);
                writer?.add_scalar("val_accuracy", (float)acc, (int)Iteration);
                note = $"val {acc:P2}";
                if (options.AdvEpsilon > 0 && options.AdvValidationImages > 0)
                {
                    int n = Math.Min(options.AdvValidationImages, options.ValidationImages);
                    double robust = RobustAccuracy(net, data, data.Count - options.ValidationImages, n, device);
                    RobustValidationAccuracy.Add(robust);
                    writer?.add_scalar("val_pgd_accuracy", (float)robust, (int)Iteration);
                    note += $" pgd {robust:P2} (ε {AdvEpsilonAt(Iteration - 1, schedule.BatchesPerEpoch):0.###} in training)";
                }
                net.train();
            }
            double ips = (Iteration - start) * schedule.BatchSize / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            progress?.Invoke(new TrainingProgress(Iteration, total, LastLoss, ips, note));
            if (options.CheckpointEvery > 0 && Iteration % options.CheckpointEvery == 0 && Iteration < total) Save(net, opt);
        }
        Save(net, opt);
        return Iteration;
    }

    /// <summary>The training radius at an iteration: linear warm-up over <see cref="ClassifierTrainingOptions.AdvEpsilonRampEpochs"/>
    /// epochs (iteration counted from 0), then <see cref="ClassifierTrainingOptions.AdvEpsilon"/>.</summary>
    internal double AdvEpsilonAt(long iteration, long batchesPerEpoch)
    {
        double rampIterations = options.AdvEpsilonRampEpochs * batchesPerEpoch;
        return rampIterations <= 0 ? options.AdvEpsilon : options.AdvEpsilon * Math.Min(1.0, (iteration + 1) / rampIterations);
    }

    /// <summary>PGD examples of the batch against the current weights (evaluation mode, restored afterwards), radius
    /// <paramref name="epsilon"/> (default: the full training radius); the step size is the configured one scaled by
    /// epsilon / AdvEpsilon, or 2.5·epsilon/steps.</summary>
    internal Tensor Adversarial(Classifier net, Tensor x, Tensor y, Generator g, double? epsilon = null)
    {
        double eps = epsilon ?? options.AdvEpsilon;
        double step = options.AdvStepSize > 0 ? options.AdvStepSize * eps / options.AdvEpsilon : 2.5 * eps / Math.Max(1, options.AdvSteps);
        var threat = new Attacks.ThreatModel(Attacks.Norm.Linf, eps, step, options.AdvSteps, 1, true, Attacks.AttackLoss.CrossEntropy);
        bool training = net.training;
        net.eval();
        try { return new Attacks.Pgd(threat).Perturb(new Attacks.ClassifierModel(net), x, y, g).detach(); }
        finally { if (training) net.train(); }
    }

    private optim.lr_scheduler.LRScheduler? CreateScheduler(optim.Optimizer opt)
    {
        long total = TotalIterations;
        return options.Schedule switch
        {
            LrSchedule.Constant => null,
            LrSchedule.Step => optim.lr_scheduler.MultiStepLR(opt, options.Milestones.Select(m => (int)(m * total)).ToList(), options.Gamma),
            LrSchedule.Cosine => optim.lr_scheduler.CosineAnnealingLR(opt, total),
            LrSchedule.OneCycle => optim.lr_scheduler.OneCycleLR(opt, options.LearningRate, (int)total,
                cycle_momentum: options.Optimizer == OptimizerKind.Sgd),
            _ => null,
        };
    }

    /// <summary>PGD accuracy (the training attack at the full radius, seeded) on records [start, start+count).</summary>
    private double RobustAccuracy(Classifier net, ImageDataset data, int start, int count, Device device, int batch = 250)
    {
        long correct = 0;
        for (int i = start; i < start + count; i += batch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, start + count - i);
            using var g = new Generator((ulong)Seeds.MixTorch(options.Seed, i, 5), CPU);
            var x = data.Images(i, n, device);
            var y = data.Labels.narrow(0, i, n).to(device);
            var adv = Adversarial(net, x, y, g);  // restores the evaluation mode Accuracy left the network in
            using var _ = no_grad();
            correct += net.forward(adv).argmax(1).eq(y).sum().cpu().item<long>();
        }
        return (double)correct / count;
    }

    /// <summary>Top-1 accuracy on records [start, start+count) in eval mode.</summary>
    public static double Accuracy(nn.Module<Tensor, Tensor> net, ImageDataset data, int start, int count, Device device, int batch = 500)
    {
        net.eval();
        using var _ = no_grad();
        long correct = 0;
        for (int i = start; i < start + count; i += batch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batch, start + count - i);
            var pred = net.forward(data.Images(i, n, device)).argmax(1).cpu();
            correct += pred.eq(data.Labels.narrow(0, i, n)).sum().item<long>();
        }
        return (double)correct / count;
    }

    private void Save(Classifier net, optim.Optimizer opt)
    {
        var meta = new Dictionary<string, string>
        {
            ["config"] = JsonSerializer.Serialize(options.Model),
            ["dataset"] = options.Dataset,
            ["iteration"] = Iteration.ToString(),
            ["total_iterations"] = TotalIterations.ToString(),
            ["seed"] = options.Seed.ToString(),
            ["final_loss"] = LastLoss.ToString("R"),
            ["validation_accuracy"] = string.Join(",", ValidationAccuracy.Select(a => a.ToString("F4"))),
            ["validation_pgd_accuracy"] = string.Join(",", RobustValidationAccuracy.Select(a => a.ToString("F4"))),
            [OptionsKey] = JsonSerializer.Serialize(options),
            ["saved_utc"] = DateTime.UtcNow.ToString("O"),
        };
        Checkpoint.Save(checkpointPath, ClassifierFile.Kind, [("model.", net)], meta, Checkpoint.OptimizerBytes(opt));
    }

    private void LoadState(Classifier net, optim.Optimizer opt)
    {
        using var f = Checkpoint.Open(checkpointPath, ClassifierFile.Kind);
        StateDictLoader.Load(net, f.Tensors, "model.", checkpointPath);
        Checkpoint.RestoreOptimizer(opt, f);
        Iteration = Checkpoint.Integer(f, "iteration", -1);
        if (Iteration < 0) throw new AdpException($"{checkpointPath}: checkpoint metadata 'iteration' must be a non-negative integer");
        LastLoss = Checkpoint.Number(f, "final_loss", double.NaN);
        foreach (var (key, list) in new[] { ("validation_accuracy", ValidationAccuracy), ("validation_pgd_accuracy", RobustValidationAccuracy) })
            foreach (var a in f.Metadata.GetValueOrDefault(key, "").Split(',', StringSplitOptions.RemoveEmptyEntries))
                list.Add(double.TryParse(a, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v)
                    ? v : throw new AdpException($"{checkpointPath}: checkpoint metadata '{key}' must be comma-separated numbers"));
    }

    public static ClassifierTrainingOptions ReadOptions(string checkpointPath)
    {
        using var f = Checkpoint.Open(checkpointPath, ClassifierFile.Kind);
        var o = Checkpoint.ReadJson<ClassifierTrainingOptions>(f, OptionsKey, "training options");
        static bool Finite(double x) => double.IsFinite(x);
        string? bad = o.Model is null ? "no model configuration"
            : o.Epochs < 1 ? $"Epochs {o.Epochs}" : o.BatchSize < 1 ? $"BatchSize {o.BatchSize}"
            : !Enum.IsDefined(o.Optimizer) ? $"Optimizer {o.Optimizer}" : !Enum.IsDefined(o.Schedule) ? $"Schedule {o.Schedule}"
            : !(o.LearningRate > 0) || !Finite(o.LearningRate) ? $"LearningRate {o.LearningRate}"
            : !Finite(o.Momentum) || !Finite(o.WeightDecay) || !Finite(o.Gamma) ? "Momentum, WeightDecay or Gamma not finite"
            : o.Milestones is null || o.Milestones.Any(m => !Finite(m)) ? "Milestones" : o.CropPadding < 0 ? $"CropPadding {o.CropPadding}"
            : o.ValidationImages < 0 ? $"ValidationImages {o.ValidationImages}" : o.TrainImages < 0 ? $"TrainImages {o.TrainImages}"
            : o.CheckpointEvery < 0 ? $"CheckpointEvery {o.CheckpointEvery}" : !(o.NoiseSigma >= 0) || !Finite(o.NoiseSigma) ? $"NoiseSigma {o.NoiseSigma}"
            : !(o.AdvEpsilon >= 0) || !Finite(o.AdvEpsilon) ? $"AdvEpsilon {o.AdvEpsilon}" : o.AdvSteps < 0 ? $"AdvSteps {o.AdvSteps}"
            : !Finite(o.AdvStepSize) ? $"AdvStepSize {o.AdvStepSize}"
            : !(o.AdvEpsilonRampEpochs >= 0) || !Finite(o.AdvEpsilonRampEpochs) ? $"AdvEpsilonRampEpochs {o.AdvEpsilonRampEpochs}"
            : o.AdvValidationImages < 0 ? $"AdvValidationImages {o.AdvValidationImages}" : o.Dataset is null ? "no data set" : o.Device is null ? "no device" : null;
        if (bad is not null) throw new AdpException($"{checkpointPath}: invalid training options in the checkpoint ({bad})");
        try { o.Model!.Validate(); DatasetRegistry.Get(o.Dataset!); }
        catch (AdpException e) { throw new AdpException($"{checkpointPath}: invalid training options in the checkpoint ({e.Message})"); }
        return o;
    }
}
