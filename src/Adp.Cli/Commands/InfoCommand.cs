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
            DataCommands.WriteVerification(Directory.Exists(dataDir)
                ? DatasetRegistry.All.Select(s => DataVerifier.Verify(s, dataDir)).ToList()
                : [], dataDir, showAbsent: true);
            return 0;
        }));
        return cmd;
    }
}
