using System.Text.Json;
using Adp.Attacks;
using Adp.Cli.Commands;
using Adp.Evaluation;

namespace Adp.Tests;

/// <summary>`adp eval robust` through the real executable: resume refusals, flags over a configuration, progress lines.
/// Tiny budgets (a few embedded MNIST test images, one purification run of at most one step).</summary>
public class EvalRobustCliTests
{
    private static string[] Base(string outDir, params string[] extra) =>
    [
        "--threads", "1", "eval", "robust", "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"),
        "--score", TestEnvironment.Model("mnist-score.ckpt"), "--images", "4", "--batch-size", "4", "--runs", "1",
        "--steps", "1", "--out", outDir, .. extra,
    ];

    [Fact]
    public void SkippedImages_AreMarkedInTheAdversarialFile_AndReplayCountsThemNotRobust()
    {
        // σ = 1 with no denoising step makes the defense wrong on some clean images, so some are skipped.
        var dir = Directory.CreateTempSubdirectory("adp-cli-skip-").FullName;
        string clf = TestEnvironment.Model("mnist-smallcnn.ckpt"), score = TestEnvironment.Model("mnist-score.ckpt");
        string[] purifier = ["--runs", "2", "--purifier", "adp", "--steps", "0", "--sigma", "1"];
        var (code, _, err) = CliErrorTests.RunAdp(["--threads", "1", "eval", "robust", "--classifier", clf, "--score", score, "--images", "16",
            "--batch-size", "16", .. purifier, "--attack", "kind=pgd,target=blind,eps=0.1,iters=1,skip-misclassified=true,name=S", "--out", dir]);
        Assert.True(code == 0, err);
        var progress = EvaluationProgress.Load(dir)!;
        var cell = progress.Cells.Values.Single(c => c.Attack == "S");
        int skipped = cell.Skipped.Count;
        Assert.InRange(skipped, 1, 15);  // some of each, or the test means nothing
        Assert.Contains($"{skipped} of 16 image-seed pairs were misclassified", File.ReadAllText(Path.Combine(dir, "report.md")));

        var adv = RobustEvaluation.AdversarialPath(dir, Adp.Cli.Commands.EvalCommands.ParseAttack("kind=pgd,target=blind,eps=0.1,iters=1,skip-misclassified=true,name=S"), 0);
        Assert.Equal(cell.Skipped.Select(i => (long)i).Order(), AdversarialSet.SkippedIndices(adv).Order());
        var (rc, output, rerr) = CliErrorTests.RunAdp(["--threads", "1", "eval", "replay", "--adv", adv, "--classifier", clf, "--score", score, .. purifier]);
        Assert.True(rc == 0, rerr);
        var flat = string.Join(" ", output.Split('\n').Select(l => l.Trim()));
        Assert.Contains($"{skipped} of 16 images were not attacked", flat);
        var accuracy = double.Parse(System.Text.RegularExpressions.Regex.Match(flat, @"MeanSoftmax\s*│\s*([0-9.]+)%").Groups[1].Value,
            System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(accuracy <= 100.0 * (16 - skipped) / 16 + 0.05,  // printed to 0.1
            $"replay {accuracy}% counts a skipped image as robust");

        // The bare classifier gets the clean digits right, so a replay that did not zero the skipped (clean) images would
        // count them all: its accuracy is at most that of the attacked images.
        var (bc, bout, berr) = CliErrorTests.RunAdp(["--threads", "1", "eval", "replay", "--adv", adv, "--classifier", clf, "--bare"]);
        Assert.True(bc == 0, berr);
        var bare = double.Parse(System.Text.RegularExpressions.Regex.Match(string.Join(" ", bout.Split('\n').Select(l => l.Trim())),
            @"Bare\s*│\s*([0-9.]+)%").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(bare <= 100.0 * (16 - skipped) / 16 + 0.05, $"bare replay {bare}% counts a skipped image as robust");

        // Replay runs the variant --purifier names (it used to run ADP whatever the option said): one-shot Tweedie at σ = 0 is
        // the identity, so it scores what the bare classifier scores; re-injection at σ 1 names itself in the summary line,
        // where ADP with these settings (σ 0, T 0) would be the identity too.
        double Replay(params string[] variant)
        {
            var (c, o, e) = CliErrorTests.RunAdp(["--threads", "1", "eval", "replay", "--adv", adv, "--classifier", clf, "--score", score,
                "--runs", "2", .. variant]);
            Assert.True(c == 0, e);
            var text = string.Join(" ", o.Split('\n').Select(l => l.Trim()));
            if (variant.Contains("reinject")) Assert.Contains("re-injection σ = 1", text);
            return double.Parse(System.Text.RegularExpressions.Regex.Match(text, @"MeanSoftmax\s*│\s*([0-9.]+)%").Groups[1].Value,
                System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Equal(bare, Replay("--purifier", "tweedie", "--sigma", "0"));
        Replay("--purifier", "reinject", "--reinject", "1", "--steps", "0");
        // --bare evaluates no purifier: a purifier option there is refused, not ignored.
        var refused = CliErrorTests.RunAdp(["eval", "replay", "--adv", adv, "--classifier", clf, "--bare", "--sigma", "0.3"]);
        Assert.Equal(2, refused.Code);
        Assert.StartsWith("adp: error: --sigma: --bare evaluates the classifier alone", refused.Err);
    }

    /// <summary>`eval robust --purifier reinject`: the defense runs the variant (config.json keeps it, the report names it, a
    /// rerun of the folder without --purifier resumes it, while ADP into that folder is refused); a full-gradient attack on a
    /// variant without a differentiable form, and a flag the variant does not read, are one line each, exit 2.</summary>
    [Fact]
    public void Robust_RunsAVariant_KeepsItInTheConfig_AndRefusesWhatItCannotAttack()
    {
        var dir = Directory.CreateTempSubdirectory("adp-cli-variant-").FullName;
        const string bpda = "kind=pgd,target=bpda-mean,eps=0.1,iters=1,eot=2,name=B";
        var (code, _, err) = CliErrorTests.RunAdp(Base(dir, "--attack", bpda, "--purifier", "reinject", "--reinject", "0.2,0.1"));
        Assert.True(code == 0, err);
        var variant = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.GetProperty("Variant");
        Assert.Equal("Reinject", variant.GetProperty("Kind").GetString());
        Assert.Equal([0.2, 0.1], variant.GetProperty("ReinjectSigmas").EnumerateArray().Select(e => e.GetDouble()));
        var report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.Contains("- Defense: reinject sigmas=0.2/0.1; ADP T=1 λ=", report);
        Assert.DoesNotContain("σ=0.25", report);  // re-injection reads no single σ: none is reported
        // The folder's config resumes the variant (nothing to compute); plain ADP there is another defense, refused.
        var again = CliErrorTests.RunAdp(["--threads", "1", "eval", "robust", "--config", Path.Combine(dir, "config.json"), "--out", dir]);
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("resuming", again.Out);
        var adp = CliErrorTests.RunAdp(Base(dir, "--attack", bpda, "--purifier", "adp"));
        Assert.Equal(2, adp.Code);
        Assert.Contains("holds results computed with purifier = reinject sigmas=0.2/0.1;", adp.Err);
        Assert.Contains("--config " + Path.Combine(dir, "config.json"), adp.Err);  // how to resume it instead

        foreach (var kind in new[] { "gated", "langevin" })
        {
            var (refused, _, message) = CliErrorTests.RunAdp(["--threads", "1", "eval", "robust", "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"),
                "--score", TestEnvironment.Model("mnist-score.ckpt"), "--images", "4", "--out", Directory.CreateTempSubdirectory("adp-cli-variant-full-").FullName,
                "--attack", "kind=pgd,target=full,eps=0.1,iters=1,eot=2,name=F", "--purifier", kind]);
            Assert.Equal(2, refused);
            Assert.Equal($"adp: error: attack 'F': target full needs a differentiable purifier; the {kind} purifier has none (adp, reinject and " +
                         "tweedie have one); attack it with BPDA", message.Trim());
        }
    }

    /// <summary>`eval snapshots` measures ADP itself: a variant option there is refused (it used to be accepted and ignored).</summary>
    [Fact]
    public void Snapshots_RefusesVariantOptions()
    {
        var (code, _, err) = CliErrorTests.RunAdp("eval", "snapshots", "x.ckpt", "--classifier", "c.ckpt", "--out", "never", "--purifier", "tweedie");
        Assert.Equal(2, code);
        Assert.StartsWith("adp: error: --purifier: eval snapshots evaluates the ADP purifier", err);
    }

    /// <summary>The command that measures ADP itself (snapshots) does not offer the variant options in --help (it refuses them,
    /// above), while the commands that run any purifier do.</summary>
    [Theory]
    [InlineData("robust", true)]
    [InlineData("snapshots", false)]
    [InlineData("defended", true)]
    [InlineData("tune", true)]
    public void Help_ListsTheVariantOptions_OnlyWhereTheyAreRead(string command, bool listed)
    {
        var (code, help, _) = CliErrorTests.RunAdp("eval", command, "--help");
        Assert.Equal(0, code);
        Assert.Contains("--sigma", help);
        foreach (var option in new[] { "--purifier", "--reinject", "--gate-threshold", "--gate-sigma", "--langevin-steps", "--langevin-level" })
            Assert.Equal(listed, help.Contains(option + " "));
    }

    /// <summary>`after=NAME` on the command line: the cascade runs, is saved in config.json and noted in the report; a name
    /// that is no earlier attack is one line, exit 2.</summary>
    [Fact]
    public void After_RunsACascadeFromTheCommandLine_AndRefusesAnUnknownName()
    {
        var dir = Directory.CreateTempSubdirectory("adp-cli-after-").FullName;
        const string first = "kind=pgd,target=bare,eps=0.1,step=0.025,iters=2,name=A";
        var (code, _, err) = CliErrorTests.RunAdp(Base(dir, "--attack", first, "--attack", "kind=pgd,target=bare,eps=0.1,iters=2,loss=dlr,name=B,after=A"));
        Assert.True(code == 0, err);
        var attacks = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.GetProperty("Attacks");
        Assert.Equal("A", attacks[1].GetProperty("After").GetString());
        Assert.False(attacks[0].TryGetProperty("After", out _));        // omitted where not set
        Assert.False(attacks[1].TryGetProperty("AfterSpec", out _));   // the resolved attack is not written
        Assert.Contains("'B' ran after 'A' (AutoAttack's cascade)", File.ReadAllText(Path.Combine(dir, "report.md")));
        // results.json marks a finished folder (carry/queue.sh), so it is written after the rest of the report.
        // (Ties allowed: file times are kernel-tick coarse. The plots before it take far longer than a tick.)
        var files = new DirectoryInfo(dir).GetFiles();
        var last = files.Single(f => f.Name == "results.json").LastWriteTimeUtc;
        Assert.All(files, f => Assert.True(f.LastWriteTimeUtc <= last, $"{f.Name} was written after results.json"));

        var (refused, _, message) = CliErrorTests.RunAdp(Base(Directory.CreateTempSubdirectory("adp-cli-after-bad-").FullName,
            "--attack", first, "--attack", "kind=pgd,target=bare,eps=0.1,iters=2,name=B,after=Z"));
        Assert.Equal(2, refused);
        Assert.Equal("adp: error: attack 'B': After names 'Z', which is not an earlier attack of this configuration", message.Trim());
    }

    /// <summary>The shipped configurations name attacks as "BPDA+EOT (research code's rule, EOT 15, 40 iters)"; on the command
    /// line name= and after= could not hold such names (split at the commas). A value in double quotes keeps its commas;
    /// unquoted values split at commas as before.</summary>
    [Fact]
    public void AttackSpec_QuotedValuesKeepTheirCommas_SoAfterCanNameAGeneratedLabel()
    {
        const string label = "BPDA+EOT (research code's rule, EOT 15, 40 iters)";
        var first = EvalCommands.ParseAttack($"kind=pgd,target=bpda,eps=0.3,step=0.075,iters=40,eot=15,name=\"{label}\",random-start=false");
        Assert.Equal(label, first.Label);
        Assert.False(first.RandomStart);
        var second = EvalCommands.ParseAttack($"kind=pgd,target=bpda,eps=0.3,step=0.075,iters=20,eot=15, after = \"{first.Label}\" ,loss=dlr");
        Assert.Equal(first.Label, second.After);
        Assert.Equal(AttackLoss.Dlr, second.Loss);                 // the pair after the quoted value is still read
        var cfg = new RobustConfig { Classifier = "c", Score = "s", Attacks = [first, second] };
        cfg.Validate();
        Assert.Equal(first.Id(), cfg.AllAttacks()[1].AfterSpec!.Id());

        Assert.Equal("a, b=c", EvalCommands.ParseAttack("name=\"a, b=c\",kind=none").Name);
        var two = EvalCommands.ParseAttack("name=\"a, b\",kind=pgd,after=\"c, d\"");   // each quote closes at the next one
        Assert.Equal(("a, b", "c, d"), (two.Name, two.After));
        Assert.Equal(("", "e"), (EvalCommands.ParseAttack("kind=pgd,name=\"\"").Name, EvalCommands.ParseAttack("name=\t\"e\"\t,kind=pgd").Name));
        Assert.Equal("x=y", EvalCommands.ParseAttack("kind=pgd,name=x=y,,").Name);   // unquoted: '=' in a value, empty pairs
        foreach (var (bad, why) in new[] { ("kind=pgd,name=\"a, b", "no closing double quote"), ("name=\"a\"b,kind=pgd", "expected ',' or the end"),
                                            ("kind=pgd,iters", "expected key=value pairs, got 'iters'") })
        {
            var e = Assert.Throws<AdpException>(() => EvalCommands.ParseAttack(bad));
            Assert.Contains(why, e.Message);
        }
    }

    [Fact]
    public void ResumeIntoAFolderOfOtherSettings_IsRefusedNamingTheField_AndAnotherEpsilonIsComputedFresh()
    {
        // Case 1 of ../shared/cases, through the CLI.
        var dir = Directory.CreateTempSubdirectory("adp-cli-resume-").FullName;
        const string small = "kind=pgd,target=bare,eps=0.02,step=0.01,iters=5,name=A";
        const string large = "kind=pgd,target=bare,eps=0.3,step=0.075,iters=10,name=A";
        var (c1, out1, err1) = CliErrorTests.RunAdp(Base(dir, "--attack", small));
        Assert.True(c1 == 0, err1);
        // Without a config, the score checkpoint's recommended preset (mnist) gives the settings and the variant.
        Assert.Equal("Reinject", JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.GetProperty("Variant")
            .GetProperty("Kind").GetString());
        Assert.DoesNotContain("NaN", out1);          // plain progress lines carry no meaningless fields
        Assert.DoesNotContain(" 0.0 img/s", out1);
        var (c2, _, err2) = CliErrorTests.RunAdp(Base(dir, "--attack", large));
        Assert.True(c2 == 0, err2);
        var fresh = Directory.CreateTempSubdirectory("adp-cli-fresh-").FullName;
        Assert.Equal(0, CliErrorTests.RunAdp(Base(fresh, "--attack", large)).Code);
        string Row(string d) => File.ReadAllLines(Path.Combine(d, "results.csv")).Single(l => l.StartsWith("\"A\""));
        Assert.Equal(Row(fresh).Split(',')[5], Row(dir).Split(',')[5]);   // mean accuracy of the ε = 0.3 row

        double Sigma() => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.GetProperty("Purifier")
            .GetProperty("Sigma").GetDouble();
        double before = Sigma();
        Assert.NotEqual(0.1, before);
        var (c3, _, err3) = CliErrorTests.RunAdp(Base(dir, "--attack", large, "--purifier", "adp", "--sigma", "0.1"));  // ADP: not the preset's re-injection
        Assert.Equal(2, c3);
        Assert.Contains("holds results computed with purifier", err3);
        Assert.Single(err3.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(before, Sigma());  // not overwritten by the refused run
    }

    [Fact]
    public void PurifierFlagsOverAConfig_OverrideOnlyTheirFields_AndRepeatedSeedsAreRefused()
    {
        var dir = Directory.CreateTempSubdirectory("adp-cli-config-").FullName;
        var cfgPath = Path.Combine(dir, "cfg.json");
        File.WriteAllText(cfgPath, """
            { "Classifier": "x", "Score": "y", "Images": 4, "Runs": 1, "BatchSize": 4, "SanityUnbounded": false,
              "Purifier": { "Sigma": 0.3, "Steps": 1, "Lambda": 0.07, "Tau": 0.002 },
              "Attacks": [ { "Name": "natural", "Kind": "None", "Target": "Blind" } ] }
            """);
        var outDir = Path.Combine(dir, "out");
        var (code, _, err) = CliErrorTests.RunAdp("--threads", "1", "eval", "robust", "--config", cfgPath,
            "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"), "--score", TestEnvironment.Model("mnist-score.ckpt"),
            "--tau", "0.005", "--out", outDir);
        Assert.True(code == 0, err);
        var p = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "config.json"))).RootElement.GetProperty("Purifier");
        Assert.Equal(0.005, p.GetProperty("Tau").GetDouble());     // the flag
        Assert.Equal(0.3, p.GetProperty("Sigma").GetDouble());     // the rest from the configuration
        Assert.Equal(0.07, p.GetProperty("Lambda").GetDouble());

        var (c2, _, e2) = CliErrorTests.RunAdp(Base(Path.Combine(dir, "o2"), "--attack", "kind=none,target=blind", "--seeds", "0,0"));
        Assert.Equal(2, c2);
        Assert.Contains("--seeds", e2);
    }

    [Fact]
    public async Task Sigterm_StopsWithinTheAttack_SavesFinishedBatches_AndSaysHowToResume()
    {
        var dir = Directory.CreateTempSubdirectory("adp-cli-term-").FullName;
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in Base(dir, "--attack", "kind=pgd,target=bpda,eps=0.3,iters=200,eot=4,random-start=false"))
            psi.ArgumentList.Insert(psi.ArgumentList.Count, a);
        psi.ArgumentList.Insert(0, Path.Combine(AppContext.BaseDirectory, "adp.dll"));
        psi.Environment.Remove("ADP_DATA_DIR");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = new System.Text.StringBuilder();
        var started = new ManualResetEventSlim();
        p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (stdout) stdout.AppendLine(e.Data); if (e.Data.Contains("working:")) started.Set(); };
        p.BeginOutputReadLine();
        Assert.True(started.Wait(TimeSpan.FromSeconds(120)), $"no progress line: {stdout} {(p.HasExited ? await stderr : "")}");
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000), "SIGTERM must stop the evaluation within the attack (a batch here takes minutes)");
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("rerun the same command to resume", await stderr);
    }
}
