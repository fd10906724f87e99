using System.Diagnostics;
using Adp.Bench;

// Throughput benchmarks for the toolkit's hot paths. Each prints one line per measurement with the machine.
// Usage: adp-bench <name> [key=value ...]
// names: dsm, forward, ops, determinism, purify, grad, clf, fullgrad, bpda-rules, load, onednn-ops, onednn-probe, phases, all
Adp.NativeRuntime.Configure();   // gradients without oneDNN, libtorch's C++ log level: before the first tensor operation
var name = args.FirstOrDefault() ?? "all";
var kv = args.Skip(1).Select(a => a.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
Console.WriteLine($"# machine: {Environment.ProcessorCount} logical CPUs, " +
                  $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
                  $"libtorch {TorchSharp.torch.__version__}, threads {TorchSharp.torch.get_num_threads()}, " +
                  $"allocator kept freed memory: {Adp.NativeRuntime.AllocatorTuned}");
var sw = Stopwatch.StartNew();
switch (name)
{
    case "dsm": ScoreBenchmarks.DsmTraining(kv); break;
    case "forward": ScoreBenchmarks.Forward(kv); break;
    case "ops": OpBenchmarks.Ops(kv); break;
    case "determinism": DeterminismCheck.Run(kv); break;
    case "purify": PurificationBenchmarks.Purification(kv); break;
    case "grad": DifferentiableBenchmarks.Gradient(kv); break;
    case "clf": ClassifierBenchmarks.Training(kv); break;
    case "fullgrad": DifferentiableBenchmarks.FullGradientIteration(kv); break;
    case "bpda-rules": BpdaRuleComparison.Run(kv); break;
    case "onednn-probe": OneDnnProbe.Run(kv); break;
    case "phases": NetworkPhases.Run(kv); break;
    case "onednn-ops": OneDnnOpProbe.Run(kv); break;
    case "load": if (ServeLoadBenchmarks.Load(kv) != 0) { Console.WriteLine("# errors"); return 1; } break;   // a running `adp serve`
    case "all": ScoreBenchmarks.Forward(kv); ScoreBenchmarks.DsmTraining(kv); break;
    default: Console.Error.WriteLine($"adp-bench: unknown benchmark '{name}'"); return 2;
}
Console.WriteLine($"# total {sw.Elapsed.TotalSeconds:F1} s");
return 0;
