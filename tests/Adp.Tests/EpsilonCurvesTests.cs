using Adp.Evaluation;

namespace Adp.Tests;

public class EpsilonCurvesTests
{
    private static RobustRow Row(string attack, string protocol, bool defended, double eps, string rule, double mean) =>
        new(attack, protocol, defended, eps, rule, [mean], mean, 0, 64, mean - 0.05, Math.Min(1, mean + 0.05), RobustReport.SingleSeedInterval,
            null, null, 1);

    private static List<RobustRow> Rows() =>
    [
        Row("clean", "no attack (bare)", false, 0, "Bare", 0.99),
        Row("pgd .3", "Pgd Bare ℓ∞ ε=0.3", false, 0.3, "Bare", 0.0),
        Row("pgd .1", "Pgd Bare ℓ∞ ε=0.1", false, 0.1, "Bare", 0.2),
        Row("sanity", "Pgd Bare ℓ∞ ε=1", false, 1, "Bare", 0.0),
        Row("natural", "no attack (defended)", true, 0, "MeanSoftmax", 0.97),
        Row("natural", "no attack (defended)", true, 0, "LogitSum", 0.96),
        Row("blind .3", "Pgd Blind ℓ∞ ε=0.3", true, 0.3, "MeanSoftmax", 0.3),
        Row("blind .3", "Pgd Blind ℓ∞ ε=0.3", true, 0.3, "LogitSum", 0.31),
        Row("blind .1", "Pgd Blind ℓ∞ ε=0.1", true, 0.1, "MeanSoftmax", 0.8),
        Row("blind .1", "Pgd Blind ℓ∞ ε=0.1", true, 0.1, "LogitSum", 0.79),
        Row("bpda .1", "Pgd Bpda ℓ∞ ε=0.1 step=0.025 iters=20 restarts=1 no random start loss=CrossEntropy EOT=15", true, 0.1, "MeanSoftmax", 0.6),
        Row("full ce", "Apgd Full ℓ∞ ε=0.1 step=0.025 iters=20 restarts=1 random start loss=CrossEntropy EOT=20", true, 0.1, "MeanSoftmax", 0.5),
        Row("full dlr", "Apgd Full ℓ∞ ε=0.1 step=0.025 iters=20 restarts=1 random start loss=Dlr EOT=20", true, 0.1, "MeanSoftmax", 0.45),
        Row("blind l2", "Pgd Blind ℓ2 ε=1.5 step=0.3 iters=40 restarts=1 random start loss=CrossEntropy", true, 1.5, "MeanSoftmax", 0.7),
        Row("blind .1 again", "Pgd Blind ℓ∞ ε=0.1", true, 0.1, "MeanSoftmax", 0.75),
    ];

    [Fact]
    public void Curves_GroupByTarget_StartAtTheUnattackedRow_AndFollowTheRule()
    {
        var s = EpsilonCurves.FromRows("tuned", Rows(), "MeanSoftmax");
        Assert.Equal(6, s.Count);
        var bare = s.Single(c => c.Label.Contains("bare"));
        Assert.Equal([0, 0.1, 0.3], bare.Points.Select(p => p.Epsilon));  // the unbounded sanity attack (ℓ∞ ε = 1) is no point
        Assert.Equal([0.99, 0.2, 0.0], bare.Points.Select(p => p.Accuracy));
        var blind = s.Single(c => c.Label == "tuned: preprocessor-blind PGD-");
        Assert.Equal([0.97, 0.75, 0.3], blind.Points.Select(p => p.Accuracy));   // ordered by ε, natural first; the stronger of two runs at 0.1
        var bpda = s.Single(c => c.Label == "tuned: BPDA+EOT PGD-20, EOT 15");
        Assert.Equal([0, 0.1], bpda.Points.Select(p => p.Epsilon));
        Assert.Equal(0.5, s.Single(c => c.Label == "tuned: full-gradient APGD-20, EOT 20").Points[1].Accuracy);   // CE and DLR stay apart
        Assert.Equal(0.45, s.Single(c => c.Label == "tuned: full-gradient APGD-DLR-20, EOT 20").Points[1].Accuracy);
        Assert.Equal([0, 1.5], s.Single(c => c.Label.EndsWith(", L2")).Points.Select(p => p.Epsilon));  // ℓ2 radii above 1 are kept
        var logit = EpsilonCurves.FromRows("", Rows(), "LogitSum").Single(c => c.Label == "preprocessor-blind PGD-");
        Assert.Equal([0.96, 0.79, 0.31], logit.Points.Select(p => p.Accuracy));
        Assert.DoesNotContain(EpsilonCurves.FromRows("", Rows(), "LogitSum"), c => c.Label.Contains("BPDA"));  // no LogitSum row
    }

    [Fact]
    public void CsvAndPlot_HoldEveryPoint_AndNoAttackIsAnError()
    {
        var s = EpsilonCurves.FromRows("a,b", Rows(), "MeanSoftmax");
        var lines = EpsilonCurves.Csv(s).TrimEnd().Split('\n');
        Assert.Equal(1 + s.Sum(c => c.Points.Count), lines.Length);
        Assert.StartsWith("\"a,b: bare PGD-\",0,0.99,0.94,1,64,1", lines[1]);
        Assert.DoesNotContain('\r', EpsilonCurves.Csv(s));
        var png = Path.Combine(Directory.CreateTempSubdirectory("adp-eps-").FullName, "eps.png");
        EpsilonCurves.Plot(s, png, "test");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png).Take(4));
        var e = Assert.Throws<AdpException>(() => EpsilonCurves.Plot(EpsilonCurves.FromRows("", Rows().Where(r => r.Epsilon == 0).ToList(), "MeanSoftmax"), png, "t"));
        Assert.Contains("no attacked radius", e.Message);
    }

    [Fact]
    public void Cli_PlotsTwoFolders_AndRefusesNonPngOutput()
    {
        var dir = Directory.CreateTempSubdirectory("adp-eps-cli-").FullName;
        string[] Eval(string outDir, double sigma) =>
        [
            "--threads", "1", "eval", "robust", "--classifier", TestEnvironment.Model("mnist-smallcnn.ckpt"),
            "--score", TestEnvironment.Model("mnist-score.ckpt"), "--images", "4", "--batch-size", "4", "--runs", "1", "--steps", "1", "--purifier", "adp",
            "--sigma", sigma.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", outDir,
            "--attack", "kind=none,target=blind,name=natural", "--attack", "kind=pgd,target=blind,eps=0.1,step=0.05,iters=2,name=b1", "--attack", "kind=pgd,target=blind,eps=0.3,step=0.1,iters=2,name=b3",
        ];
        string a = Path.Combine(dir, "a"), b = Path.Combine(dir, "b"), png = Path.Combine(dir, "eps.png");
        foreach (var (d, sigma) in new[] { (a, 0.25), (b, 0.1) })
        {
            var (code, _, err) = CliErrorTests.RunAdp(Eval(d, sigma));
            Assert.True(code == 0, err);
        }
        var (c, stdout, err2) = CliErrorTests.RunAdp(["eval", "epsilon-plot", $"{a}=paper", b, "--out", png]);
        Assert.True(c == 0, err2);
        Assert.True(File.Exists(png));
        var csv = File.ReadAllLines(Path.ChangeExtension(png, ".csv"));
        Assert.Contains(csv, l => l.StartsWith("\"paper: preprocessor-blind PGD-2\",0.3,"));
        Assert.Contains(csv, l => l.StartsWith("\"b: preprocessor-blind PGD-2\",0,"));
        Assert.Contains("paper", stdout);
        Assert.DoesNotContain(csv, l => l.Contains("bare"));  // the unbounded sanity attack (ε = 1) is no curve
        var (c2, _, err3) = CliErrorTests.RunAdp(["eval", "epsilon-plot", a, "--out", Path.Combine(dir, "eps.svg")]);
        Assert.Equal(2, c2);
        Assert.Contains("--out", err3);
        // A folder whose path holds '=' is taken whole; a rule the folder did not evaluate is refused naming it.
        var odd = Path.Combine(dir, "sigma=0.25");
        Directory.Move(b, odd);
        Assert.Equal(0, CliErrorTests.RunAdp(["eval", "epsilon-plot", odd, "--out", png]).Code);
        Assert.Contains(File.ReadAllLines(Path.ChangeExtension(png, ".csv")), l => l.StartsWith("\"sigma=0.25: "));
        var configPath = Path.Combine(a, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!;
        config["Rules"] = new System.Text.Json.Nodes.JsonArray("MeanSoftmax");
        File.WriteAllText(configPath, config.ToJsonString());
        var (c3, _, err4) = CliErrorTests.RunAdp(["eval", "epsilon-plot", a, "--rule", "LogitSum", "--out", png]);
        Assert.Equal(2, c3);
        Assert.Contains("LogitSum", err4);
    }
}
