using System.CommandLine;
using Spectre.Console;
using Adp.Data;
using Adp.Models;

namespace Adp.Cli;

/// <summary>Options every command understands, and the error convention: a one-line message, exit code 2.</summary>
public static class CliSupport
{
    public const int UserError = 2;

    /// <summary>The width tables and wrapped lines get when standard output is redirected (no console to measure).</summary>
    public const int RedirectedWidth = 200;

    public static readonly Option<string?> DataDir = new("--data-dir")
    {
        Description = $"Folder holding the data sets (default: ${Data.DataDirectory.EnvironmentVariable}, else {Data.DataDirectory.DefaultCacheFolder()})",
        Recursive = true,
    };

    public static readonly Option<string> Device = new("--device")
    {
        Description = "cpu or cuda",
        DefaultValueFactory = _ => "cpu",
        Recursive = true,
    };

    public static readonly Option<int> Threads = new("--threads")
    {
        Description = "CPU threads for tensor work (0 = libtorch default)",
        DefaultValueFactory = _ => 0,
        Recursive = true,
    };

    /// <summary>Which images an evaluation runs on: the test split, or the validation split (the last 5,000 training
    /// images, which the trainers hold out) for tuning.</summary>
    public static Option<string> SplitOption() => new("--split")
    {
        Description = "test, or validation (the last --validation-images training images, 5,000 unless set; the classifiers and the MNIST and Fashion-MNIST score models hold them out, the CIFAR-10 score model did not; tune on it, report on test)",
        DefaultValueFactory = _ => "test",
    };

    /// <summary>--validation-images, the companion of --split validation.</summary>
    public static Option<int> ValidationImagesOption() => new("--validation-images")
    {
        Description = "with --split validation: how many of the last training images (default 5,000; the shipped CIFAR-10 ResNet holds out only 2,000)",
        DefaultValueFactory = _ => DatasetLoader.DefaultValidationImages,
    };

    /// <summary>The evaluation split of --split / --validation-images; validation images the classifier trained on are refused
    /// (<see cref="Training.ClassifierTrainer.RequireHeldOut"/>).</summary>
    public static ImageDataset LoadEvaluationSplit(ParseResult parse, DatasetSpec spec, Option<string> split, Option<int> validationImages,
        params (string Path, IReadOnlyDictionary<string, string> Metadata)[] classifiers)
    {
        string name = parse.GetValue(split)!;
        int count = parse.GetValue(validationImages);
        if (name != "validation" && parse.GetResult(validationImages) is { Implicit: false })
            throw new AdpException($"--validation-images: applies to --split validation only (the split is '{name}')");
        if (name == "validation")
            foreach (var (path, metadata) in classifiers) Training.ClassifierTrainer.RequireHeldOut(path, metadata, count, spec.TrainCount);
        return DatasetLoader.LoadEvaluationSplit(spec, name, DataDirectory.Resolve(parse.GetValue(DataDir)), count);
    }

    /// <summary>Notes (stdout, not an error) when the score model trained on some of the validation images it purifies:
    /// allowed, as DSM sees no labels, but tuning with it may flatter the purifier (the CIFAR-10 score model and the v1 MNIST
    /// and Fashion-MNIST ones trained on all training images; `train score --train-images` holds the tail out).</summary>
    public static void NoteScoreModelOverlap(ImageDataset split, string scorePath, IReadOnlyDictionary<string, string> metadata, DatasetSpec spec)
    {
        if (split.Split != Split.Train) return;  // the test split
        int count = split.TakenFrom ?? split.Count;  // the whole validation split (before --images takes its first N)
        if (Training.ScoreTrainer.ValidationOverlap(metadata, count, spec.TrainCount) is not { } seen || seen == 0) return;
        AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape($"{scorePath} trained on {seen} of the {count} validation-split images (DSM uses no labels, " +
            $"but a purifier tuned with it may do better here than on test; train score --train-images {spec.TrainCount - count} holds them out)")}");
    }

    /// <summary>Runs a command body; user errors become one line on stderr and exit code 2.</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            ApplyRuntime(parse);
            return body();
        }
        catch (AdpException e)
        {
            return Fail(e.Message);
        }
        catch (TypeInitializationException e) when (e.TypeName == "TorchSharp.torch")
        {
            return Fail("TorchSharp's native library failed to load; rebuild (the build patches it for this host's libstdc++) or see README 'Set-up': " +
                        (e.InnerException?.Message.Split('\n')[0] ?? ""));
        }
        catch (OperationCanceledException)
        {
            return Fail("cancelled");
        }
        catch (Exception e) when (e is IOException and not EndOfStreamException or UnauthorizedAccessException)
        {
            // A file or folder that cannot be read or written (full disk, read-only, no permission) is the machine's
            // state, not a bug: one line with the system's message, which names the path. Writes of results go through
            // AtomicFile, which says more (and keeps the previous version).
            return Fail($"cannot read or write a file or folder: {e.Message.Split('\n')[0].Trim()}");
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("ADP_DEBUG") is null)
        {
            // A bug, not bad input: one line, exit code 1; ADP_DEBUG=1 shows the stack trace.
            Console.Error.WriteLine($"adp: internal error: {e.GetType().Name}: {e.Message.Split('\n')[0]} (set ADP_DEBUG=1 for details)");
            return 1;
        }
    }

    public static int Fail(string message)
    {
        Console.Error.WriteLine($"adp: error: {message}");
        return UserError;
    }

    private static void ApplyRuntime(ParseResult parse)
    {
        NativeRuntime.Configure();
        var device = parse.GetValue(Device) ?? "cpu";
        if (device is not ("cpu" or "cuda") && !device.StartsWith("cuda:"))
            throw new AdpException($"--device: expected cpu or cuda, got '{device}'");
        if (device.StartsWith("cuda") && !TorchSharp.torch.cuda.is_available())
            throw new AdpException("--device cuda: no CUDA device is available (this build of TorchSharp is CPU-only)");
        int threads = parse.GetValue(Threads);
        if (threads < 0) throw new AdpException($"--threads: expected 0 or a positive integer, got {threads}");
        if (threads > 0) TorchSharp.torch.set_num_threads(threads);
    }

    /// <summary>Loads a classifier and a score model (<paramref name="weights"/>: raw or EMA; null = the checkpoint's default) for
    /// the same images, or says why they do not fit together.</summary>
    public static (Models.Classifier Clf, Models.ClassifierInfo ClfInfo, Models.Ncsnv2 Score, Models.ScoreModelInfo ScoreInfo) LoadDefense(
        string classifierPath, string scorePath, TorchSharp.torch.Device device, Models.WeightsChoice? weights = null)
    {
        var (clf, cinfo) = Models.ClassifierFile.Load(classifierPath, device);
        var (net, sinfo) = Models.ScoreModelFile.Load(scorePath, weights, device);
        if (cinfo.Config.Channels != sinfo.Config.Channels || cinfo.Config.ImageSize != sinfo.Config.ImageSize)
            throw new AdpException($"{cinfo.Path}: classifier takes {cinfo.Config.Channels}×{cinfo.Config.ImageSize}² images but the score model {sinfo.Path} takes {sinfo.Config.Channels}×{sinfo.Config.ImageSize}²");
        Models.ModelChecks.RequireSameDataset(sinfo.Path, sinfo.Dataset, $"the classifier {cinfo.Path}", cinfo.Dataset);
        return (clf, cinfo, net, sinfo);
    }

    public static string ResolveDevice(ParseResult parse) => parse.GetValue(Device) ?? "cpu";

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
}
