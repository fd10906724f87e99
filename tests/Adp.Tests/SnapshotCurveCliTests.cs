using System.Globalization;
using Adp.IO;

namespace Adp.Tests;

/// <summary>`adp eval snapshots`: the curve's denoising gain agrees with `adp eval denoise` on the same images and seed,
/// and a rerun into the same folder measures only snapshots not stored there.</summary>
public class SnapshotCurveCliTests
{
    private static string WithIteration(string dir, string name, long iteration)
    {
        var path = Path.Combine(dir, name);
        using var f = SafeTensors.Load(TestEnvironment.Model("mnist-score.ckpt"));
        SafeTensors.Save(path, f.Tensors, new Dictionary<string, string>(f.Metadata) { ["iteration"] = iteration.ToString() });
        return path;
    }

    private static string[] Rows(string dir) => File.ReadAllLines(Path.Combine(dir, "curve.csv")).Skip(1).ToArray();

    [Theory]
    [InlineData("/runs/mnist-ngf16.iter3000.ckpt", "mnist-ngf16")]
    [InlineData("/runs/mnist-ngf16.ckpt", "mnist-ngf16")]
    [InlineData("models/mnist-score.ckpt", "mnist-score")]
    [InlineData("a.iter12.b.iter7.ckpt", "a.iter12.b")]   // only the trailing .iterK is the snapshot's
    [InlineData("x.iteration.ckpt", "x.iteration")]
    public void CurveLines_FollowTrainingRuns_ByFileName(string file, string run) =>
        Assert.Equal(run, Adp.Evaluation.SnapshotCurve.TrainingRun(file));

    [DataFact]
    public void Snapshots_AgreeWithDenoise_AndARerunMeasuresOnlyNewSnapshots()
    {
        var dir = Directory.CreateTempSubdirectory("adp-snapcurve-").FullName;
        string a = WithIteration(dir, "s.iter1000.ckpt", 1000), b = WithIteration(dir, "s.iter2000.ckpt", 2000);
        string clf = TestEnvironment.Model("mnist-smallcnn.ckpt"), data = TestEnvironment.DataDir!, outDir = Path.Combine(dir, "curve");
        string[] common = ["--threads", "1", "eval", "snapshots", "--classifier", clf, "--images", "6", "--runs", "1", "--steps", "2",
            "--weights", "Model", "--denoise-sigmas", "0.25", "--data-dir", data, "--out", outDir];

        var first = CliErrorTests.RunAdp([.. common, a]);
        Assert.True(first.Code == 0, first.Err);
        Assert.Contains("measured s.iter1000.ckpt", first.Out);
        var rowsFirst = Rows(outDir);
        Assert.Single(rowsFirst);

        // The σ = 0.25 gain is the one-shot Tweedie gain of `adp eval denoise` on the same 6 validation images, seed and weights
        // (named: the file may record EMA as its default).
        var denoise = CliErrorTests.RunAdp("--threads", "1", "eval", "denoise", "--score", a, "--weights", "Model", "--sigma", "0.25",
            "--images", "6", "--split", "validation", "--data-dir", data);
        Assert.True(denoise.Code == 0, denoise.Err);
        double gain = double.Parse(rowsFirst[0].Split(',')[3], CultureInfo.InvariantCulture);
        Assert.Contains($"gain={gain:F2}", denoise.Out);

        var second = CliErrorTests.RunAdp([.. common, a, b]);
        Assert.True(second.Code == 0, second.Err);
        Assert.Contains("stored s.iter1000.ckpt", second.Out);
        Assert.Contains("measured s.iter2000.ckpt", second.Out);
        var rows = Rows(outDir);
        Assert.Equal(2, rows.Length);
        Assert.Equal(rowsFirst[0], rows[0]);  // the stored point, unchanged
        // Same weights and images: the snapshot at "iteration 2000" is the same network, so the same numbers.
        Assert.Equal(rows[0].Split(',')[3..], rows[1].Split(',')[3..]);

        // Only the new snapshot given: the curve still holds both.
        var third = CliErrorTests.RunAdp([.. common, b]);
        Assert.True(third.Code == 0, third.Err);
        Assert.Contains("stored s.iter2000.ckpt", third.Out);
        Assert.Contains("note: the curve also holds", third.Out);
        Assert.Equal(2, Rows(outDir).Length);

        // Other settings into the same folder: refused, naming what differs.
        var other = CliErrorTests.RunAdp([.. common, "--seed", "1", a]);
        Assert.Equal(2, other.Code);
        Assert.Contains("(seed 0, not 1)", other.Err);
    }

    [DataFact]
    public void ADivergedSnapshot_IsStoredWithItsNaNGain_AndReadBack()
    {
        var dir = Directory.CreateTempSubdirectory("adp-snapcurve-nan-").FullName;
        var bad = Path.Combine(dir, "s.iter9000.ckpt");
        using (var f = SafeTensors.Load(TestEnvironment.Model("mnist-score.ckpt")))
        {
            foreach (var t in f.Tensors.Values.Where(t => t.dtype == TorchSharp.torch.ScalarType.Float32)) t.fill_(HeldScalars.NaN);
            SafeTensors.Save(bad, f.Tensors, f.Metadata);
        }
        string[] args = ["--threads", "1", "eval", "snapshots", bad, "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"), "--images", "4",
            "--runs", "0", "--weights", "Model", "--denoise-sigmas", "0.25", "--data-dir", TestEnvironment.DataDir!, "--out", Path.Combine(dir, "c")];
        var first = CliErrorTests.RunAdp(args);
        Assert.True(first.Code == 0, first.Err);
        Assert.Contains("NaN", Rows(Path.Combine(dir, "c"))[0]);
        var again = CliErrorTests.RunAdp(args);
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("stored s.iter9000.ckpt", again.Out);
    }

    [DataFact]
    public void BadInput_IsOneLineExitTwo_AndGainsOnlyCurvesIgnoreThePurifier()
    {
        var dir = Directory.CreateTempSubdirectory("adp-snapcurve-bad-").FullName;
        string score = TestEnvironment.Model("mnist-score.ckpt"), clf = TestEnvironment.Model("mnist-smallcnn.ckpt"), data = TestEnvironment.DataDir!;
        string[] Args(string outDir, params string[] extra) => ["--threads", "1", "eval", "snapshots", score, "--classifier", clf, "--images", "2",
            "--runs", "0", "--weights", "Model", "--denoise-sigmas", "0.25", "--data-dir", data, "--out", outDir, .. extra];
        void Refused(string[] args, string text)
        {
            var (code, _, err) = CliErrorTests.RunAdp(args);
            Assert.True(code == 2, $"exit {code}: {err}");
            Assert.Contains(text, err);
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }

        // A gains-only curve (S = 0) does not depend on purifier settings: a rerun with other steps reuses its point.
        var gains = Path.Combine(dir, "gains");
        Assert.Equal(0, CliErrorTests.RunAdp(Args(gains)).Code);
        var again = CliErrorTests.RunAdp(Args(gains, "--steps", "3"));
        Assert.True(again.Code == 0, again.Err);
        Assert.Contains("stored mnist-score.ckpt", again.Out);

        // Damaged state files: valid JSON without the expected content is not a curve.
        foreach (var bad in new[] { "{}", "{\"Fingerprint\":{},\"Points\":null}", "[]", "garbage" })
        {
            var folder = Directory.CreateTempSubdirectory("adp-snapcurve-state-").FullName;
            File.WriteAllText(Path.Combine(folder, "snapshots.json"), bad);
            Refused(Args(folder), "not a snapshot-curve state file");
        }
        Refused(Args(Path.Combine(dir, "o1")).Select(a => a == "0.25" ? "0.1,,0.2" : a).ToArray(), "--denoise-sigmas");
        // A Fashion-MNIST score model measured on MNIST images.
        Refused(Args(Path.Combine(dir, "o2")).Select(a => a == score ? TestEnvironment.Model("fashion-mnist-score.ckpt") : a).ToArray(),
            "score model trained on fashion-mnist");
        // The same for the defended classifier.
        Refused(["--threads", "1", "eval", "defended", "--classifier", clf, "--score", TestEnvironment.Model("fashion-mnist-score.ckpt"),
            "--images", "2", "--runs", "1", "--steps", "1", "--data-dir", data], "score model trained on fashion-mnist, but the classifier");
    }
}
