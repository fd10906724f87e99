using System.CommandLine;
using Adp.Data;
using Adp.Models;
using Adp.Training;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static partial class TrainCommands
{
    private static Command CreateClassifier()
    {
        var dataset = new Option<string>("--dataset") { Description = "mnist, fashion-mnist or cifar-10", DefaultValueFactory = _ => "mnist" };
        var arch = new Option<string>("--arch") { Description = "smallcnn, wrn-DEPTH-WIDTH (e.g. wrn-28-10), resnet18 or resnet-small", DefaultValueFactory = _ => "smallcnn" };
        var dropout = new Option<double>("--dropout") { Description = "dropout in WideResNet blocks", DefaultValueFactory = _ => 0.3 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 128 };
        var optimizer = new Option<OptimizerKind>("--optimizer") { Description = "Sgd or Adam", DefaultValueFactory = _ => OptimizerKind.Sgd };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 0.1 };
        var momentum = new Option<double>("--momentum") { DefaultValueFactory = _ => 0.9 };
        var wd = new Option<double>("--weight-decay") { DefaultValueFactory = _ => 5e-4 };
        var nesterov = new Option<bool>("--nesterov");
        var schedule = new Option<LrSchedule>("--schedule") { Description = "Constant, Step, Cosine or OneCycle", DefaultValueFactory = _ => LrSchedule.Step };
        var flip = new Option<bool>("--flip") { Description = "random horizontal flips (where the data set allows them)" };
        var crop = new Option<int>("--crop-padding") { Description = "random crop after zero padding by N pixels (0 = off)", DefaultValueFactory = _ => 0 };
        var val = new Option<int>("--validation-images") { Description = "hold out the last N training images for validation", DefaultValueFactory = _ => 5000 };
        var trainImages = new Option<int>("--train-images") { Description = "use only the first N training images (0 = all)", DefaultValueFactory = _ => 0 };
        var noise = new Option<double>("--noise-sigma") { Description = "Gaussian-noise augmentation: x + σz with σ uniform in [0, S] per image (0 = off)", DefaultValueFactory = _ => 0 };
        var advEps = new Option<double>("--adv-eps") { Description = "PGD adversarial training (Madry et al.): ℓ∞ radius (0 = off)", DefaultValueFactory = _ => 0 };
        var advSteps = new Option<int>("--adv-steps") { Description = "PGD adversarial training: steps", DefaultValueFactory = _ => 10 };
        var advStep = new Option<double>("--adv-step") { Description = "PGD adversarial training: step size (0 = 2.5·ε/steps)", DefaultValueFactory = _ => 0 };
        var advRamp = new Option<double>("--adv-eps-ramp") { Description = "PGD adversarial training: grow ε linearly from 0 over the first N epochs (0 = off)", DefaultValueFactory = _ => 0 };
        var advVal = new Option<int>("--adv-val-images") { Description = "PGD adversarial training: PGD accuracy on the first N validation images per epoch (0 = off)", DefaultValueFactory = _ => 500 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var every = new Option<int>("--checkpoint-every") { DefaultValueFactory = _ => 500 };
        var output = new Option<string>("--out") { Description = "checkpoint file", Required = true };
        var resume = new Option<bool>("--resume") { Description = "continue the run stored in --out with its settings (--epochs included: the learning-rate schedule is laid out over the total, so a longer run is a new run)" };

        var cmd = new Command("classifier", "Train a classifier (cross-entropy) on a data set's training split");
        foreach (var o in new Option[] { dataset, arch, dropout, epochs, batch, optimizer, lr, momentum, wd, nesterov, schedule, flip, crop, val, trainImages, noise, advEps, advSteps, advStep, advRamp, advVal, seed, every, output, resume })
            cmd.Options.Add(o);
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var outPath = parse.GetValue(output)!;
            bool isResume = parse.GetValue(resume);
            ClassifierTrainingOptions opts;
            if (isResume)
            {
                if (!File.Exists(outPath)) throw new AdpException($"--resume: checkpoint {outPath} not found");
                opts = ClassifierTrainer.ReadOptions(outPath);
                NoteIgnoredOnResume(parse, [dataset, arch, dropout, epochs, batch, optimizer, lr, momentum, wd, nesterov, schedule, flip, crop, val,
                    trainImages, noise, advEps, advSteps, advStep, advRamp, advVal, seed]);
            }
            else
            {
                var spec = DatasetRegistry.Get(parse.GetValue(dataset)!);
                opts = new ClassifierTrainingOptions
                {
                    Dataset = spec.Name,
                    Model = ParseArchitecture(parse.GetValue(arch)!, spec, parse.GetValue(dropout)),
                    Epochs = (int)Positive(parse.GetValue(epochs), "--epochs"),
                    BatchSize = (int)Positive(parse.GetValue(batch), "--batch-size"),
                    Optimizer = parse.GetValue(optimizer), LearningRate = parse.GetValue(lr), Momentum = parse.GetValue(momentum),
                    WeightDecay = parse.GetValue(wd), Nesterov = parse.GetValue(nesterov), Schedule = parse.GetValue(schedule),
                    HorizontalFlip = parse.GetValue(flip), CropPadding = parse.GetValue(crop), ValidationImages = parse.GetValue(val),
                    TrainImages = parse.GetValue(trainImages), Seed = parse.GetValue(seed), CheckpointEvery = parse.GetValue(every),
                    Device = CliSupport.ResolveDevice(parse),
                    NoiseSigma = parse.GetValue(noise), AdvEpsilon = parse.GetValue(advEps), AdvSteps = parse.GetValue(advSteps),
                    AdvStepSize = parse.GetValue(advStep), AdvEpsilonRampEpochs = parse.GetValue(advRamp),
                    AdvValidationImages = parse.GetValue(advVal),
                };
                if (opts.NoiseSigma < 0) throw new AdpException($"--noise-sigma: expected ≥ 0, got {opts.NoiseSigma}");
                if (opts.AdvEpsilon < 0 || opts.AdvEpsilon > 1) throw new AdpException($"--adv-eps: expected 0…1, got {opts.AdvEpsilon}");
                if (opts.AdvEpsilon > 0 && opts.AdvSteps < 1) throw new AdpException($"--adv-steps: expected ≥ 1, got {opts.AdvSteps}");
                if (opts.AdvStepSize < 0) throw new AdpException($"--adv-step: expected ≥ 0, got {opts.AdvStepSize}");
                if (!(opts.AdvEpsilonRampEpochs >= 0) || opts.AdvEpsilonRampEpochs > opts.Epochs)
                    throw new AdpException($"--adv-eps-ramp: expected 0…{opts.Epochs} (epochs), got {opts.AdvEpsilonRampEpochs}");
                if (opts.AdvEpsilonRampEpochs > 0 && opts.AdvEpsilon == 0) throw new AdpException("--adv-eps-ramp: needs --adv-eps > 0");
                if (opts.AdvEpsilon == 0) opts = opts with { AdvValidationImages = 0 };
                else if (opts.AdvValidationImages < 0 || opts.AdvValidationImages > opts.ValidationImages)
                    throw new AdpException($"--adv-val-images: expected 0…{opts.ValidationImages} (the validation images), got {opts.AdvValidationImages}");
                if (File.Exists(outPath)) throw new AdpException($"--out {outPath}: file exists; pass --resume to continue it or choose another path");
            }
            using var data = DatasetLoader.Load(opts.Dataset, Split.Train, parse.GetValue(CliSupport.DataDir));
            var trainer = new ClassifierTrainer(opts, data, outPath);
            AnsiConsole.MarkupLine(Markup.Escape($"training {opts.Model.Describe()} on {data.Description} ({trainer.TrainCount} for training, last {opts.ValidationImages} held out), " +
                                                 $"{opts.Epochs} epochs, batch {opts.BatchSize}, {opts.Optimizer} lr {opts.LearningRate} {opts.Schedule}, seed {opts.Seed}" +
                                                 (opts.NoiseSigma > 0 ? $", noise σ ≤ {opts.NoiseSigma}" : "") +
                                                 (opts.AdvEpsilon > 0 ? $", PGD-{opts.AdvSteps} adversarial training ε = {opts.AdvEpsilon}" +
                                                  (opts.AdvEpsilonRampEpochs > 0 ? $" (ramped over {opts.AdvEpsilonRampEpochs} epochs)" : "") : "") + $" → {outPath}"));
            var reached = ProgressReporter.Run("train", trainer.TotalIterations, (report, token) => trainer.Run(isResume, report, token, outPath + ".tb"));
            AnsiConsole.MarkupLine(Markup.Escape($"iteration {reached}/{trainer.TotalIterations}, loss {trainer.LastLoss:F4}, validation accuracy by epoch: " +
                                                 string.Join(" ", trainer.ValidationAccuracy.Select(a => a.ToString("P2"))) +
                                                 (trainer.RobustValidationAccuracy.Count > 0 ? ", PGD accuracy by epoch: " +
                                                  string.Join(" ", trainer.RobustValidationAccuracy.Select(a => a.ToString("P2"))) : "")));
            return Stopped(reached, trainer.TotalIterations, outPath);
        }));
        return cmd;
    }

    internal static ClassifierConfig ParseArchitecture(string arch, DatasetSpec spec, double dropout)
    {
        var a = arch.ToLowerInvariant();
        ClassifierConfig c;
        if (a == "smallcnn") c = ClassifierConfig.SmallCnn(spec.Channels, spec.Height);
        else if (a == "resnet18") c = ClassifierConfig.ResNet18;
        else if (a == "resnet-small") c = ClassifierConfig.ResNetSmall;
        else if (a.StartsWith("wrn-") && a.Split('-') is [_, var d, var w] && int.TryParse(d, out int depth) && int.TryParse(w, out int width))
            c = ClassifierConfig.Wrn28x10 with { Depth = depth, Width = width, Dropout = dropout };
        else throw new AdpException($"--arch: expected smallcnn, wrn-DEPTH-WIDTH, resnet18 or resnet-small, got '{arch}'");
        if (c.Architecture != ClassifierArchitecture.SmallCnn)
        {
            c = c with { Channels = spec.Channels, ImageSize = spec.Height };
            if (spec.Channels != 3) c = c with { Mean = null, Std = null };
        }
        return c with { NumClasses = spec.ClassNames.Count };
    }
}
