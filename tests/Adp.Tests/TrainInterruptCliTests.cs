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
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "adp.dll"), "--threads", "1", "train", "score", "--dataset", "mnist",
                     "--data-dir", TestEnvironment.DataDir!, "--train-images", "64", "--ngf", "4", "--batch-size", "4", "--iterations", "1000000",
                     "--checkpoint-every", "0", "--out", ckpt })
            psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var started = new ManualResetEventSlim();
        var stdout = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lock (stdout) stdout.AppendLine(e.Data); if (e.Data.Contains(" dsm ")) started.Set(); };
        p.BeginOutputReadLine();
        Assert.True(started.Wait(TimeSpan.FromSeconds(120)), $"no progress line: {stdout} {(p.HasExited ? await stderr : "")}");
        using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(60_000), "SIGTERM must stop the training");
        var err = await stderr;
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("rerun with --resume", err);
        Assert.True(File.Exists(ckpt), "the checkpoint must be written on SIGTERM");

        using var f = IO.SafeTensors.Load(ckpt);
        long reached = long.Parse(f.Metadata["iteration"]);
        var (code, _, err2) = CliErrorTests.RunAdp("--threads", "1", "train", "score", "--data-dir", TestEnvironment.DataDir!, "--out", ckpt,
            "--resume", "--iterations", (reached + 2).ToString());
        Assert.True(code == 0, err2);
    }
}
