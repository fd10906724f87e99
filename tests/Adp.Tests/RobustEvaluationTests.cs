using Adp.Attacks;
using Adp.Data;
using Adp.Evaluation;
using Adp.Models;
using Adp.Purification;
using TorchSharp;
using static TorchSharp.torch;

namespace Adp.Tests;

public class RobustEvaluationTests
{
    private static RobustRow Row(string protocol, bool defended, double eps, double acc, string rule = "MeanSoftmax") =>
        new(protocol, protocol, defended, eps, rule, [acc], acc, 0, (long)(acc * 1000), 1000,
            Statistics.Wilson((long)(acc * 1000), 1000).Low, Statistics.Wilson((long)(acc * 1000), 1000).High, acc, 1);

    [Fact]
    public void SanityChecks_FlagEachViolation_AndPassConsistentResults()
    {
        var good = new List<RobustRow>
        {
            Row("Pgd Blind a", true, 0.1, 0.9), Row("Pgd Blind b", true, 0.3, 0.8),
            Row("Pgd Bpda c", true, 0.3, 0.6), Row("Pgd Full d", true, 0.3, 0.3), Row("Pgd Bare e", false, 1.0, 0.0),
        };
        Assert.Empty(RobustReport.Sanity(good));

        var bad = new List<RobustRow>
        {
            Row("Pgd Blind a", true, 0.1, 0.5), Row("Pgd Blind b", true, 0.3, 0.9),      // rises with ε
            Row("Pgd Bpda c", true, 0.3, 0.95),                                          // BPDA weaker than blind
            Row("Pgd Full d", true, 0.3, 0.97),                                          // full weaker than BPDA
            Row("Pgd Bare e", false, 1.0, 0.4),                                          // unbounded not ≈ 0
        };
        var findings = RobustReport.Sanity(bad);
        Assert.Contains(findings, f => f.Contains("rises with ε"));
        Assert.Contains(findings, f => f.StartsWith("Bpda attack"));
        Assert.Contains(findings, f => f.StartsWith("Full attack"));
        Assert.Contains(findings, f => f.Contains("unbounded"));
    }

    [Fact]
    public void KilledEvaluation_ResumesToTheSameResult()
    {
        torch.manual_seed(2);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.eval();
        var score = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        score.eval();
        using var data = ScoreTrainingTests.SyntheticDataset(8, seed: 3);
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = 8, BatchSize = 4, Runs = 2, Seeds = [0, 1], Resubmissions = 2,
            Purifier = new PurifierSettings(Steps: 2),
            Attacks = [new AttackSpec { Kind = AttackKind.None, Target = AttackTarget.Blind }, new AttackSpec { Kind = AttackKind.Pgd, Target = AttackTarget.Bpda, Iterations = 2, Eot = 2, RandomStart = false }],
            SanityUnbounded = false,
        };
        string a = Directory.CreateTempSubdirectory("adp-rob-a-").FullName, b = Directory.CreateTempSubdirectory("adp-rob-b-").FullName;
        var whole = new RobustEvaluation(cfg, data, clf, score, CPU, a);
        whole.Run();

        using var cts = new CancellationTokenSource();
        var first = new RobustEvaluation(cfg, data, clf, score, CPU, b);
        first.Run((_, done, _) => { if (done == 3) cts.Cancel(); }, cts.Token);
        Assert.Equal(3, first.Cells.Values.Sum(c => c.BatchesDone));
        var resumed = new RobustEvaluation(cfg, data, clf, score, CPU, b);
        resumed.Run();

        Assert.Equal(whole.Cells.Keys.Order(), resumed.Cells.Keys.Order());
        foreach (var (key, cell) in whole.Cells)
            foreach (var (rule, lists) in cell.Correct)
                Assert.Equal(lists, resumed.Cells[key].Correct[rule]);
        Assert.Equal(8, whole.Cells["1|0"].Correct["MeanSoftmax"][1].Count);  // resubmission 2 of 2 covers all images
    }
}
