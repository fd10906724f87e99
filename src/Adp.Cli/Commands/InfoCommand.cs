using System.CommandLine;
using Adp.Data;
using Adp.IO;
using Spectre.Console;
using static TorchSharp.torch;

namespace Adp.Cli.Commands;

public static class InfoCommand
{
    public static Command Create()
    {
        var cmd = new Command("info", "Toolkit, TorchSharp and libtorch versions, threads, device, and which data sets are present and verified");
        cmd.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var dataDir = DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir));
            var t = new Table().AddColumn("item").AddColumn("value");
            t.AddRow("adp toolkit", Checkpoint.ToolkitVersion);
            t.AddRow("TorchSharp", typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString() ?? "?");
            t.AddRow("libtorch", __version__);
            t.AddRow(".NET", Environment.Version.ToString());
            t.AddRow("OS", System.Runtime.InteropServices.RuntimeInformation.OSDescription);
            t.AddRow("threads", $"{get_num_threads()} (of {Environment.ProcessorCount} logical CPUs)");
            t.AddRow("device", CliSupport.ResolveDevice(parse) + (cuda.is_available() ? $" (CUDA available, {cuda.device_count()} device(s))" : " (no CUDA)"));
            t.AddRow("data directory", Markup.Escape(dataDir) + (Directory.Exists(dataDir) ? "" : " (does not exist)"));
            AnsiConsole.Write(t);
            bool exists = Directory.Exists(dataDir);
            var checks = exists ? DatasetRegistry.All.Select(s => DataVerifier.Verify(s, dataDir)).ToList() : [];
            if (checks.Any(c => c.Present))
                DataCommands.WriteVerification(checks, dataDir, showAbsent: true);
            else
            {
                // No table of absent rows (or an empty one): say so, and how to get data.
                Console.WriteLine($"no data sets found in {dataDir}{(exists ? "" : " (the folder does not exist)")}; "
                                  + $"'adp data fetch {string.Join(" ", DatasetRegistry.All.Select(s => s.Name))}' downloads them");
                DataCommands.WriteEmbeddedSlices();
            }
            return 0;
        }));
        return cmd;
    }
}
