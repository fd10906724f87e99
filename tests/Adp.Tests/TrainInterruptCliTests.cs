namespace Adp.Tests;

/// <summary>A training stopped by SIGTERM writes its checkpoint and exits 130 (not 0), so scripts and schedulers can tell
/// an interrupted run from a finished one; the resumed run exits 0.</summary>
public class TrainInterruptCliTests
{
    [DataFact]
    public async Task Sigterm_ExitsInterrupted_WithTheCheckpointWritten_AndTheResumedRunExitsZero()
    {
        var dir = Directory.CreateTempSubdirectory("adp-train-term-").FullName;
        var ckpt = Path.Combine(dir, "s.ckpt");
        await StopWithSigterm(["train", "score", "--dataset", "mnist", "--train-images", "64", "--ngf", "4", "--batch-size", "4",
            "--iterations", "1000000", "--checkpoint-every", "0", "--out", ckpt], "dsm", ckpt);

        using var f = IO.SafeTensors.Load(ckpt);
        long reached = long.Parse(f.Metadata["iteration"]);
        var (code, _, err2) = CliErrorTests.RunAdp("--threads", "1", "train", "score", "--data-dir", TestEnvironment.DataDir!, "--out", ckpt,
            "--resume", "--iterations", (reached + 2).ToString(), "--lr", "0.5");
        Assert.True(code == 0, err2);
        Assert.Contains("--resume continues with the checkpoint's settings; ignored: --lr", err2);
    }

    /// <summary>A diverging run (lr 1e30) stops with one line naming the iteration and the remedy; --grad-clip is refused
    /// when negative and taken on --resume (recorded in the checkpoint's options).</summary>
    [DataFact]
    public void Divergence_StopsWithOneLine_AndGradClipIsCheckedAndTakenOnResume()
    {
        var dir = Directory.CreateTempSubdirectory("adp-train-nan-").FullName;
        var ckpt = Path.Combine(dir, "s.ckpt");
        string[] common = ["--threads", "1", "train", "score", "--data-dir", TestEnvironment.DataDir!, "--dataset", "mnist", "--train-images", "64",
            "--ngf", "4", "--batch-size", "4", "--checkpoint-every", "1", "--out", ckpt];
        var (code, _, err) = CliErrorTests.RunAdp([.. common, "--iterations", "20", "--lr", "1e30"]);
        Assert.NotEqual(0, code);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("training diverged at iteration", err);
        Assert.Contains("--grad-clip", err);
        var bad = CliErrorTests.RunAdp([.. common, "--iterations", "20", "--grad-clip", "-1"]);
        Assert.Equal(2, bad.Code);
        Assert.Contains("--grad-clip: expected", bad.Err);
        File.Delete(ckpt);
        Assert.Equal(0, CliErrorTests.RunAdp([.. common, "--iterations", "2"]).Code);
        var resumed = CliErrorTests.RunAdp([.. common, "--iterations", "3", "--resume", "--grad-clip", "0.5"]);
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Equal(0.5, Training.ScoreTrainer.ReadOptions(ckpt).GradClip);
        Directory.Delete(dir, true);
    }

    [DataFact]
    public async Task Sigterm_StopsAClassifierTrainingWithExitCode130()
    {
        var dir = Directory.CreateTempSubdirectory("adp-train-term-clf-").FullName;
        var ckpt = Path.Combine(dir, "c.ckpt");
        await StopWithSigterm(["train", "classifier", "--dataset", "mnist", "--train-images", "64", "--validation-images", "8",
            "--batch-size", "4", "--epochs", "100000", "--checkpoint-every", "0", "--out", ckpt], "train", ckpt);
    }

    /// <summary>Starts `adp ARGS`, waits for its first progress line ("HH:mm:ss TITLE i/N …": the signal handler is installed
    /// by then), sends SIGTERM, and checks exit code 130, the resume hint and the checkpoint.</summary>
    private static async Task StopWithSigterm(string[] args, string progressTitle, string ckpt)
    {
        var progressLine = new System.Text.RegularExpressions.Regex($@"^\d\d:\d\d:\d\d {progressTitle} \d+/\d+");
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "adp.dll"), "--threads", "1", "--data-dir", TestEnvironment.DataDir! }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var started = new ManualResetEventSlim();
        var stdout = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (stdout) stdout.AppendLine(e.Data); if (progressLine.IsMatch(e.Data)) started.Set(); };
        p.BeginOutputReadLine();
        Assert.True(started.Wait(TimeSpan.FromSeconds(120)), $"no progress line: {stdout} {(p.HasExited ? await stderr : "")}");
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000), "SIGTERM must stop the training");
        var err = await stderr;
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("rerun with --resume", err);
        Assert.True(File.Exists(ckpt), "the checkpoint must be written on SIGTERM");
    }
}
