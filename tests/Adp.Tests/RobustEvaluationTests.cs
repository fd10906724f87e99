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
    internal static RobustRow Row(string protocol, bool defended, double eps, double acc, string rule = "MeanSoftmax") =>
        new(protocol, protocol, defended, eps, rule, [acc], acc, 0, 1000,
            Statistics.Wilson((long)(acc * 1000), 1000).Low, Statistics.Wilson((long)(acc * 1000), 1000).High, "Wilson", null, null, 1);

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
            Row("Pgd Full d", true, 0.3, 0.995),                                         // full weaker than BPDA
            Row("Pgd Bare e", false, 1.0, 0.4),                                          // unbounded not ≈ 0
        };
        var findings = RobustReport.Sanity(bad);
        Assert.Contains(findings, f => f.Contains("rises with ε"));
        Assert.Contains(findings, f => f.Contains("Bpda attack ("));
        Assert.Contains(findings, f => f.Contains("Full attack ("));
        Assert.Contains(findings, f => f.Contains("unbounded"));

        // An inversion inside the 95% intervals (1,000 images: 0.62 vs 0.60) is a note, not a violation.
        var noisy = new List<RobustRow> { Row("Pgd Blind a", true, 0.3, 0.60), Row("Pgd Bpda c", true, 0.3, 0.62) };
        Assert.Empty(RobustReport.Sanity(noisy));
        Assert.Contains(RobustReport.Notes(noisy), n => n.StartsWith("Bpda attack") && n.EndsWith("within the 95% intervals"));
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
        Assert.True(whole.Run());

        using var cts = new CancellationTokenSource();
        var first = new RobustEvaluation(cfg, data, clf, score, CPU, b);
        Assert.False(first.Run((_, done, _, _) => { if (done == 12) cts.Cancel(); }, cts.Token));  // stopped short
        Assert.Equal(12, first.Progress.Cells.Values.Sum(c => c.Indices.Count));
        Assert.Empty(first.Examples);
        var resumed = new RobustEvaluation(cfg, data, clf, score, CPU, b);
        Assert.True(resumed.Run());  // nothing left after the resume: complete, examples built

        // A signal after the last batch does not make a finished evaluation "interrupted": complete, examples built.
        using var late = new CancellationTokenSource();
        var lateRun = new RobustEvaluation(cfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-rob-c-").FullName);
        Assert.True(lateRun.Run((_, done, total, _) => { if (done == total) late.Cancel(); }, late.Token));
        Assert.Equal(2, lateRun.Examples.Count);

        Assert.Equal(whole.Progress.Cells.Keys.Order(), resumed.Progress.Cells.Keys.Order());
        foreach (var (key, cell) in whole.Progress.Cells)
            foreach (var (rule, lists) in cell.Correct)
                Assert.Equal(lists, resumed.Progress.Cells[key].Correct[rule]);
        var bpda = whole.Progress.Cells[EvaluationProgress.CellKey(cfg.Attacks[1], 0)];
        Assert.Equal(8, bpda.Correct["MeanSoftmax"][1].Count);  // resubmission 2 of 2 covers all images

        // The example grids too: the resumed run computed none of the natural row's first-seed batches, and began the
        // others mid-cell; its grids were missing or showed other images (kill torture).
        Assert.Equal(whole.Examples.Keys.Order(), resumed.Examples.Keys.Order());
        Assert.Equal(2, whole.Examples.Count);
        foreach (var (label, (clean, adv, purified)) in whole.Examples)
        {
            var r = resumed.Examples[label];
            static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);
            Assert.True(Same(clean, r.Clean) && Same(adv, r.Adv) && Same(purified, r.Purified), label);
        }
    }

    [Fact]
    public void SkipMisclassified_AttacksOnlyTheCleanCorrectImages_AndChangesNoOtherOutcome()
    {
        torch.manual_seed(6);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.eval();
        var score = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        score.eval();
        const int n = 12;
        using var noise = ScoreTrainingTests.SyntheticDataset(n, seed: 7);
        // Labels: the untrained classifier's own prediction at even positions, another class at odd ones, so the bare
        // classifier is right on exactly the even images.
        Tensor own;
        using (no_grad()) own = clf.forward(noise.Images(0, n, CPU)).argmax(1);
        var labels = own.clone();
        for (int i = 1; i < n; i += 2) labels[i] = (own[i] + 1) % 10;
        using var data = new ImageDataset(DatasetRegistry.FashionMnist, Split.Train, noise.Images(0, n, CPU).mul(255).round().to(ScalarType.Byte), labels);
        var bare = new AttackSpec { Name = "bare", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Epsilon = 0.5, Iterations = 3, IterationsCurve = [0, 3] };
        var full = new AttackSpec { Name = "full", Kind = AttackKind.Pgd, Target = AttackTarget.Full, Epsilon = 0.3, Iterations = 2, Eot = 2, IterationsCurve = [0, 2] };
        var bareSkip = bare with { Name = "bare, skipping", SkipMisclassified = true };
        var fullSkip = full with { Name = "full, skipping", SkipMisclassified = true };
        var blindSkip = new AttackSpec { Name = "blind, skipping", Kind = AttackKind.Pgd, Target = AttackTarget.Blind, Epsilon = 0.3, Iterations = 2, SkipMisclassified = true };
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = n, BatchSize = 4, Runs = 3, Seeds = [0], Resubmissions = 2, SanityUnbounded = false,
            Purifier = new PurifierSettings(Steps: 2), Attacks = [bare, bareSkip, full, fullSkip, blindSkip],
        };
        string dir = Directory.CreateTempSubdirectory("adp-skip-").FullName;
        var eval = new RobustEvaluation(cfg, data, clf, score, CPU, dir);
        Assert.True(eval.Run());
        CellState Cell(AttackSpec a) => eval.Progress.Cells[EvaluationProgress.CellKey(a, 0)];

        // Bare: skipped exactly where the classifier is wrong on clean input.
        Assert.Equal(Enumerable.Range(0, n).Where(i => i % 2 == 1), Cell(bareSkip).Skipped.Order());
        // Defended: skipped exactly where a clean classification (S runs, the skip check's streams) is wrong under every rule.
        var idx = Enumerable.Range(0, n).Select(i => (long)i).ToList();
        var defense = new DefendedClassifier(clf, new AdaptiveStepPurifier(score, cfg.Purifier), cfg.Runs);
        using var o = defense.Classify(data.Images(0, n, CPU), PerImageSource.For(0, idx, [RobustEvaluation.SkipCheckPurpose]));
        var anyRight = cfg.Rules.Select(r => o.Predict(r).eq(labels)).Aggregate((a, b) => a.logical_or(b)).data<bool>().ToArray();
        Assert.Equal(Enumerable.Range(0, n).Where(i => !anyRight[i]), Cell(fullSkip).Skipped.Order());
        Assert.InRange(Cell(fullSkip).Skipped.Count, 1, n - 1);  // both kinds present, or the test means nothing
        Assert.Equal(Cell(fullSkip).Skipped, Cell(blindSkip).Skipped);  // one clean mask for every skipping attack (AutoAttack)

        foreach (var (plain, skipping) in new[] { (bare, bareSkip), (full, fullSkip) })
        {
            CellState a = Cell(plain), b = Cell(skipping);
            Assert.Equal(a.Indices, b.Indices);
            var skipped = b.Skipped.ToHashSet();
            int[] Expect(List<int> withoutSkip) => a.Indices.Select((i, pos) => skipped.Contains(i) ? 0 : withoutSkip[pos]).ToArray();
            foreach (var (rule, lists) in a.Correct)
                for (int r = 0; r < lists.Count; r++) Assert.Equal(Expect(lists[r]), b.Correct[rule][r]);
            if (plain == bare) Assert.Empty(b.RunsCorrect);
            else Assert.Equal(Expect(a.RunsCorrect), b.RunsCorrect);
            foreach (var (k, list) in a.IterationsCurve) Assert.Equal(Expect(list), b.IterationsCurve[k]);

            // The stored adversarial example of a skipped image is the clean image, marked as skipped (eval replay counts it
            // as not robust); without skipping the attack moved it, and the file has no marks (its format as before).
            Assert.Equal(skipped.Select(i => (long)i).Order(), AdversarialSet.SkippedIndices(RobustEvaluation.AdversarialPath(dir, skipping, 0)).Order());
            using (var plainFile = IO.SafeTensors.Load(RobustEvaluation.AdversarialPath(dir, plain, 0)))
                Assert.False(plainFile.Tensors.ContainsKey("skipped"));
            var (images, indices, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, skipping, 0));
            var (moved, movedIndices, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, plain, 0));
            Assert.Equal(indices.data<long>().ToArray(), movedIndices.data<long>().ToArray());
            foreach (var (i, row) in indices.data<long>().ToArray().Select((i, row) => (i, row)).Where(p => skipped.Contains((int)p.i)))
            {
                var clean = data.Images((int)i, 1, CPU)[0];
                Assert.True(images[row].eq(clean).all().item<bool>());
                Assert.False(moved[row].eq(clean).all().item<bool>());
            }
        }
        // One image per batch (batches with nothing to attack), with a steps curve on the skipping attack: the same outcomes,
        // image by image; the steps curve is that of the attack without skipping, 0 for the skipped images.
        var curveCfg = cfg with { BatchSize = 1, Attacks = [bareSkip, fullSkip], StepsCurve = [1, 2, 2] };
        var single = new RobustEvaluation(curveCfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-skip-1-").FullName);
        Assert.True(single.Run());
        foreach (var a in new[] { bareSkip, fullSkip })
        {
            CellState x = Cell(a), y = single.Progress.Cells[EvaluationProgress.CellKey(a, 0)];
            Assert.Equal(x.Skipped, y.Skipped);
            Assert.Equal(x.RunsCorrect, y.RunsCorrect);
            foreach (var (rule, lists) in x.Correct) Assert.Equal(lists, y.Correct[rule]);
            foreach (var (k, list) in x.IterationsCurve) Assert.Equal(list, y.IterationsCurve[k]);
        }
        var plainCurve = new RobustEvaluation(cfg with { Attacks = [full], StepsCurve = [1, 2, 2] }, data, clf, score, CPU,
            Directory.CreateTempSubdirectory("adp-skip-curve-").FullName);
        Assert.True(plainCurve.Run());
        CellState withCurve = single.Progress.Cells[EvaluationProgress.CellKey(fullSkip, 0)], without = plainCurve.Progress.Cells[EvaluationProgress.CellKey(full, 0)];
        Assert.Equal(new[] { 1, 2 }, withCurve.StepsCurve.Keys.Order());
        var skippedFull = withCurve.Skipped.ToHashSet();
        foreach (var t in new[] { 1, 2 })
        {
            var byIndex = without.Indices.Zip(without.StepsCurve[t]).ToDictionary(p => p.First, p => p.Second);
            Assert.Equal(withCurve.Indices.Select(i => skippedFull.Contains(i) ? 0 : byIndex[i]), withCurve.StepsCurve[t]);
        }

        // Shards merge to the unsharded cells, skipped images included.
        var shards = Enumerable.Range(0, 2).Select(k =>
        {
            var shardCfg = cfg with { Attacks = [bareSkip, fullSkip], ShardIndex = k, ShardCount = 2 };
            var d = Directory.CreateTempSubdirectory($"adp-skip-shard{k}-").FullName;
            Assert.True(new RobustEvaluation(shardCfg, data, clf, score, CPU, d).Run());
            IO.AtomicFile.Write(Path.Combine(d, "config.json"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(shardCfg, RobustConfig.Json));
            return d;
        }).ToList();
        var merged = ReportFolder.Merge(shards, Directory.CreateTempSubdirectory("adp-skip-merged-").FullName, new());
        foreach (var a in new[] { bareSkip, fullSkip })
        {
            CellState x = Cell(a), y = merged.Progress.Cells[EvaluationProgress.CellKey(a, 0)];
            Assert.Equal(x.Skipped.Order(), y.Skipped.Order());
            var pos = y.Positions();
            foreach (var (rule, lists) in x.Correct) Assert.Equal(lists[0], x.Indices.Select(i => y.Correct[rule][0][pos[i]]));
        }
        var report = RobustReport.Build(cfg, eval, data, new());
        Assert.Contains(report.SanityNotes, s => s.StartsWith("'full, skipping' attacked only the images classified correctly") &&
                                                 s.Contains($"{Cell(fullSkip).Skipped.Count} of {n} image-seed pairs"));
        Assert.Contains("on clean-correct images only", report.Rows.Single(r => r.Attack == "full, skipping" && r.Rule == "MeanSoftmax").Protocol);
        Assert.Throws<AdpException>(() => new AttackSpec { Kind = AttackKind.None, SkipMisclassified = true }.Validate());
        Assert.Equal(bare.Id(), bare.StreamId());
        Assert.Equal(bare.StreamId(), bareSkip.StreamId());
        Assert.NotEqual(bare.Id(), bareSkip.Id());
    }

    [Theory]
    [InlineData(AttackKind.Pgd)]
    [InlineData(AttackKind.Apgd)]  // APGD's k-th point is its best so far; k = Iterations is what it returns
    public void IterationsCurve_EndsAtTheFinalResult_AndStartsAtTheCleanOne(AttackKind kind)
    {
        torch.manual_seed(4);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.eval();
        var score = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        score.eval();
        using var noise = ScoreTrainingTests.SyntheticDataset(16, seed: 5);
        // labels = the untrained classifier's own predictions, so clean accuracy is 100% and the attack has room
        Tensor own;
        using (no_grad()) own = clf.forward(noise.Images(0, 16, CPU)).argmax(1);
        using var data = new ImageDataset(DatasetRegistry.FashionMnist, Split.Train, noise.Images(0, 16, CPU).mul(255).round().to(ScalarType.Byte), own);
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = 16, BatchSize = 8, Seeds = [0], SanityUnbounded = false,
            Attacks =
            [
                new AttackSpec { Kind = AttackKind.None, Target = AttackTarget.Bare },
                new AttackSpec { Kind = kind, Target = AttackTarget.Bare, Epsilon = 0.5, Iterations = 6, RandomStart = false, IterationsCurve = [0, 2, 6] },
            ],
        };
        var eval = new RobustEvaluation(cfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-iters-").FullName);
        eval.Run();
        var clean = eval.Progress.Cells[EvaluationProgress.CellKey(cfg.Attacks[0], 0)].Correct[RobustEvaluation.BareRule][0];
        var attacked = eval.Progress.Cells[EvaluationProgress.CellKey(cfg.Attacks[1], 0)];
        Assert.Equal(new[] { 0, 2, 6 }, attacked.IterationsCurve.Keys.Order());
        Assert.Equal(16, clean.Sum());
        Assert.Equal(clean, attacked.IterationsCurve[0]);                                  // no random start: k = 0 is the clean image
        Assert.Equal(attacked.Correct[RobustEvaluation.BareRule][0], attacked.IterationsCurve[6]);  // k = Iterations is the result
        Assert.True(attacked.IterationsCurve[6].Sum() < clean.Sum(), "the attack must have lowered accuracy for this test to mean anything");

        var report = RobustReport.Build(cfg, eval, data, new());
        Assert.Equal(3, report.IterationsCurves.Single().Value.Count);
        var dir = Directory.CreateTempSubdirectory("adp-iters-report-").FullName;
        report.Write(dir, eval);
        Assert.True(File.Exists(Path.Combine(dir, "accuracy-vs-iterations.png")));
        Assert.Contains("Accuracy vs attack iterations", File.ReadAllText(Path.Combine(dir, "report.md")));
        Assert.Throws<AdpException>(() => (cfg.Attacks[1] with { Restarts = 2 }).Validate());
        Assert.Throws<AdpException>(() => (cfg.Attacks[1] with { Kind = AttackKind.Fgsm }).Validate());
    }
}
