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

    /// <summary>Untrained small models and n synthetic images labelled with the classifier's own prediction at even positions
    /// and another class at odd ones, so the bare classifier is right on exactly the even images.</summary>
    internal static (Classifier Clf, Ncsnv2 Score, ImageDataset Data, Tensor Labels) HalfRight(int n)
    {
        torch.manual_seed(6);
        var clf = Classifier.Create(ClassifierConfig.SmallCnn());
        clf.eval();
        var score = new Ncsnv2(new ScoreModelConfig(1, 28, 4, 1, 0.01, 3));
        score.eval();
        using var noise = ScoreTrainingTests.SyntheticDataset(n, seed: 7);
        Tensor own;
        using (no_grad()) own = clf.forward(noise.Images(0, n, CPU)).argmax(1);
        var labels = own.clone();
        using TorchSharp.Scalar classes = 10;
        for (int i = 1; i < n; i += 2) labels[i] = own[i].Plus(RootedScalars.IntOne).remainder(classes);
        var data = new ImageDataset(DatasetRegistry.FashionMnist, Split.Train,
            noise.Images(0, n, CPU).mul(RootedScalars.Float255).round().to(ScalarType.Byte), labels);
        return (clf, score, data, labels);
    }

    /// <summary>Runs <paramref name="cfg"/> as two shards (each folder with its config.json, as the CLI writes it) and merges them.</summary>
    private static ReportFolder ShardAndMerge(RobustConfig cfg, ImageDataset data, nn.Module<Tensor, Tensor> clf, nn.Module<Tensor, Tensor> score,
        string prefix)
    {
        var shards = Enumerable.Range(0, 2).Select(k =>
        {
            var shardCfg = cfg with { ShardIndex = k, ShardCount = 2 };
            var d = Directory.CreateTempSubdirectory($"{prefix}-shard{k}-").FullName;
            Assert.True(new RobustEvaluation(shardCfg, data, clf, score, CPU, d).Run());
            IO.AtomicFile.Write(Path.Combine(d, "config.json"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(shardCfg, RobustConfig.Json));
            return d;
        }).ToList();
        return ReportFolder.Merge(shards, Directory.CreateTempSubdirectory($"{prefix}-merged-").FullName, new());
    }

    [Fact]
    public void SkipMisclassified_AttacksOnlyTheCleanCorrectImages_AndChangesNoOtherOutcome()
    {
        const int n = 12;
        var (clf, score, data, labels) = HalfRight(n);
        using var _ = data;
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
        var merged = ShardAndMerge(cfg with { Attacks = [bareSkip, fullSkip] }, data, clf, score, "adp-skip");
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
        using var data = new ImageDataset(DatasetRegistry.FashionMnist, Split.Train,
            noise.Images(0, 16, CPU).mul(RootedScalars.Float255).round().to(ScalarType.Byte), own);
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

    [Fact]
    public void Cascade_AttacksOnlyWhatTheEarlierAttackLeftRobust_AndReportsTheWorstCaseOfBoth()
    {
        const int n = 12;
        var (clf, score, data, labels) = HalfRight(n);
        using var _ = data;
        // Two weak attacks (each leaves some images robust and breaks some the other does not), the second alone and as the cascade.
        var bareCe = new AttackSpec { Name = "bare ce", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Epsilon = 0.02, Iterations = 1 };
        var bareMargin = new AttackSpec { Name = "bare margin", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Epsilon = 0.03, Iterations = 3,
                                          Loss = AttackLoss.Margin, IterationsCurve = [0, 3] };
        var fullCe = new AttackSpec { Name = "full ce", Kind = AttackKind.Pgd, Target = AttackTarget.Full, Epsilon = 0.02, Iterations = 1, Eot = 2,
                                      SkipMisclassified = true };
        var fullMargin = new AttackSpec { Name = "full margin", Kind = AttackKind.Pgd, Target = AttackTarget.Full, Epsilon = 0.03, Iterations = 2,
                                          Eot = 2, Loss = AttackLoss.Margin, IterationsCurve = [0, 2] };
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = n, BatchSize = 4, Runs = 3, Seeds = [0], Resubmissions = 2, SanityUnbounded = false,
            Purifier = new PurifierSettings(Steps: 2),
            Attacks = [bareCe, bareMargin, bareMargin with { Name = "bare cascade", After = "bare ce" },
                       fullCe, fullMargin, fullMargin with { Name = "full cascade", After = "full ce" }],
        };
        string dir = Directory.CreateTempSubdirectory("adp-cascade-").FullName;
        var eval = new RobustEvaluation(cfg, data, clf, score, CPU, dir);
        Assert.True(eval.Run());
        AttackSpec Spec(string label) => cfg.AllAttacks().Single(a => a.Label == label);
        CellState Cell(string label) => eval.Progress.Cells[EvaluationProgress.CellKey(Spec(label), 0)];

        foreach (var (first, alone, cascade) in new[] { ("bare ce", "bare margin", "bare cascade"), ("full ce", "full margin", "full cascade") })
        {
            CellState f = Cell(first), a = Cell(alone), c = Cell(cascade);
            Assert.Equal(f.Indices, c.Indices);
            Assert.Equal(a.Indices, c.Indices);
            // Survived the first attack: correct under at least one rule in every resubmission. The others are not attacked
            // again and keep the first attack's outcomes; the survivors get the worse of both.
            var survived = f.Indices.Select((_, pos) => f.Correct.Values.Any(lists => lists.All(l => l[pos] == 1))).ToArray();
            Assert.Equal(f.Indices.Where((_, pos) => !survived[pos]).Order(), c.BrokenEarlier.Order());
            Assert.Empty(c.Skipped);
            Assert.InRange(c.BrokenEarlier.Count, 1, n - 1);  // both kinds present, or the test means nothing
            int[] Expect(List<int> mine, List<int> theirs) =>
                mine.Select((v, pos) => survived[pos] ? Math.Min(v, theirs[pos]) : theirs[pos]).ToArray();
            foreach (var (rule, lists) in c.Correct)
                for (int r = 0; r < lists.Count; r++) Assert.Equal(Expect(a.Correct[rule][r], f.Correct[rule][r]), lists[r]);
            if (first == "full ce") Assert.Equal(Expect(a.RunsCorrect, f.RunsCorrect), c.RunsCorrect);
            else Assert.Empty(c.RunsCorrect);
            var curveRule = f.Correct[first == "full ce" ? DecisionRule.MeanSoftmax.ToString() : RobustEvaluation.BareRule][0];
            foreach (var (k, list) in a.IterationsCurve) Assert.Equal(Expect(list, curveRule), c.IterationsCurve[k]);

            // Images the first attack broke keep its adversarial example, marked as not attacked; the others get the second's.
            var (images, indices, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, Spec(cascade), 0));
            var (firstImages, firstIndices, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, Spec(first), 0));
            var (aloneImages, aloneIndices, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, Spec(alone), 0));
            Assert.Equal(c.BrokenEarlier.Select(i => (long)i).Order(), AdversarialSet.SkippedIndices(RobustEvaluation.AdversarialPath(dir, Spec(cascade), 0)).Order());
            int Row(Tensor idx, long i) => Array.IndexOf(idx.data<long>().ToArray(), i);
            foreach (var i in c.Indices)
            {
                var expected = c.BrokenEarlier.Contains(i) ? firstImages[Row(firstIndices, i)] : aloneImages[Row(aloneIndices, i)];
                Assert.True(images[Row(indices, i)].allclose(expected, rtol: 0, atol: 1e-6), $"{cascade}: image {i}");
            }
        }
        // The cascade lowers accuracy below the second attack alone somewhere, or the worst case would go untested.
        Assert.True(Cell("full cascade").Correct["MeanSoftmax"].Sum(l => l.Sum()) + Cell("bare cascade").Correct["Bare"].Sum(l => l.Sum()) <
                    Cell("full margin").Correct["MeanSoftmax"].Sum(l => l.Sum()) + Cell("bare margin").Correct["Bare"].Sum(l => l.Sum()));
        Assert.Contains("(cascade:", Spec("full cascade").Protocol());
        Assert.DoesNotContain("full ce", Spec("full cascade").Protocol());  // by the earlier attack's settings, not its name

        // The worst case within survivors: an image the first attack left robust under one rule but broke under another keeps
        // the break. Such mixed outcomes are rare with these tiny models, so the first attack's cell is written by hand (a
        // folder holding only it and its examples) and the rest computed on top of it.
        // Likewise an image it broke in one submission only keeps its outcome in the other (it is not attacked again).
        var full = Cell("full margin");
        const string ms = "MeanSoftmax";
        int j = full.Correct[ms][1].IndexOf(1);
        Assert.True(j >= 0, "the second attack alone must leave some image robust for this check to mean anything");
        int b = (j + 1) % n;
        var handWritten = new CellState
        {
            Attack = "full ce", Protocol = Spec("full ce").Protocol(), Seed = 0, Indices = [.. full.Indices],
            Correct = full.Correct.ToDictionary(kv => kv.Key, kv => kv.Value.Select(l => Enumerable.Repeat(1, n).ToList()).ToList()),
            RunsCorrect = Enumerable.Repeat(cfg.Runs * cfg.Resubmissions, n).ToList(),
        };
        handWritten.Correct[ms][1][j] = 0;  // j: broken under mean softmax in the second submission,
        handWritten.RunsCorrect[j] = 0;     // robust under the other rules: a survivor
        foreach (var (rule, lists) in handWritten.Correct) lists[rule == ms ? 1 : 0][b] = 0;  // b: broken under every rule, ms only in
        handWritten.RunsCorrect[b] = 1;                                                       // the second submission
        string mixed = Directory.CreateTempSubdirectory("adp-cascade-mixed-").FullName;
        new EvaluationProgress { Fingerprint = eval.Progress.Fingerprint, Cells = { [EvaluationProgress.CellKey(Spec("full ce"), 0)] = handWritten } }.Save(mixed);
        Directory.CreateDirectory(Path.Combine(mixed, "adv"));
        File.Copy(RobustEvaluation.AdversarialPath(dir, Spec("full ce"), 0), RobustEvaluation.AdversarialPath(mixed, Spec("full ce"), 0));
        var onTop = new RobustEvaluation(cfg with { Attacks = [fullCe, fullMargin, fullMargin with { Name = "full cascade", After = "full ce" }] },
            data, clf, score, CPU, mixed);
        Assert.True(onTop.Run());
        var cascaded = onTop.Progress.Cells[EvaluationProgress.CellKey(Spec("full cascade"), 0)];
        Assert.Equal([full.Indices[b]], cascaded.BrokenEarlier);
        Assert.Equal(full.Indices, cascaded.Indices);
        Assert.Equal(0, cascaded.Correct[ms][1][j]);
        Assert.Equal(0, cascaded.RunsCorrect[j]);
        Assert.Equal(1, cascaded.RunsCorrect[b]);
        foreach (var (rule, lists) in full.Correct)
            for (int r = 0; r < lists.Count; r++)
                Assert.Equal(lists[r].Select((v, pos) => pos == b ? handWritten.Correct[rule][r][b] : pos == j && rule == ms && r == 1 ? 0 : v),
                    cascaded.Correct[rule][r]);
        Assert.Equal(1, cascaded.Correct[ms][0][b]);  // kept from the first attack: correct in the first submission

        var report = RobustReport.Build(cfg, eval, data, new());
        Assert.Contains(report.SanityNotes, s => s.StartsWith("'full cascade' ran after 'full ce'") &&
                                                 s.Contains($": {Cell("full cascade").BrokenEarlier.Count} of {n} image-seed pairs were broken"));
        Assert.Contains("after Pgd Bare with loss CrossEntropy", report.Rows.First(r => r.Attack == "bare cascade").Protocol);

        // Shards merge to the unsharded cells.
        var merged = ShardAndMerge(cfg, data, clf, score, "adp-cascade");
        foreach (var label in new[] { "bare cascade", "full cascade" })
        {
            CellState x = Cell(label), y = merged.Progress.Cells[EvaluationProgress.CellKey(Spec(label), 0)];
            Assert.Equal(x.BrokenEarlier.Order(), y.BrokenEarlier.Order());
            Assert.Equal(x.BrokenEarlier.Select(i => (long)i).Order(),
                AdversarialSet.SkippedIndices(RobustEvaluation.AdversarialPath(merged.Dir, Spec(label), 0)).Order());  // marks kept
            var pos = y.Positions();
            foreach (var (rule, lists) in x.Correct)
                for (int r = 0; r < lists.Count; r++) Assert.Equal(lists[r], x.Indices.Select(i => y.Correct[rule][r][pos[i]]));
        }

        // Identity: the cascade's results depend on the first attack's settings, not on its name; its draws are the second's.
        Assert.Equal(Spec("full margin").StreamId(), Spec("full cascade").StreamId());
        Assert.NotEqual(Spec("full margin").Id(), Spec("full cascade").Id());
        AttackSpec Resolved(RobustConfig c2, string label) => c2.AllAttacks().Single(a => a.Label == label);
        var renamed = cfg with { Attacks = [fullCe with { Name = "renamed" }, fullMargin with { Name = "full cascade", After = "renamed" }] };
        Assert.Equal(Spec("full cascade").Id(), Resolved(renamed, "full cascade").Id());
        var stronger = cfg with { Attacks = [fullCe with { Epsilon = 0.03 }, fullMargin with { Name = "full cascade", After = "full ce" }] };
        Assert.NotEqual(Spec("full cascade").Id(), Resolved(stronger, "full cascade").Id());
        // Refused: a name that is no earlier attack, a later one, a cascade across models, a cascade without an attack.
        foreach (var (attacks, message) in new (List<AttackSpec>, string)[]
                 {
                     ([fullCe, fullMargin with { After = "nope" }], "not an earlier attack"),
                     ([fullMargin with { After = "full ce" }, fullCe], "not an earlier attack"),
                     ([bareCe, fullMargin with { After = "bare ce" }], "evaluate the same model"),
                     ([fullCe, new AttackSpec { Kind = AttackKind.None, After = "full ce" }], "needs an attack"),
                     ([new AttackSpec { Name = "natural", Kind = AttackKind.None }, fullMargin with { After = "natural" }], "attacks nothing"),
                     ([fullCe with { Epsilon = 0.05 }, fullMargin with { After = "full ce" }], "is not within this attack's"),
                     ([fullCe with { Norm = Norm.L2, Target = AttackTarget.Full }, fullMargin with { After = "full ce" }], "is not within this attack's"),
                 })
            Assert.Contains(message, Assert.Throws<AdpException>(() => (cfg with { Attacks = attacks }).Validate()).Message);
    }

    /// <summary>A configuration with a purifier variant (re-injection): the natural row, BPDA and the full-gradient attack all
    /// run it, as an independent computation from the attack classes, the variant's purifiers and the documented random
    /// streams (attack: purpose 1; resubmission r: purpose 2, r) gives; and the attack through plain ADP would have produced
    /// other adversarial examples, so the test fails if the variant is ignored anywhere.</summary>
    [Fact]
    public void Variant_IsWhatTheDefenseRunsAndWhatBpdaAndTheFullGradientAttack()
    {
        const int n = 4;
        var (clf, score, data, labels) = HalfRight(n);
        using var _ = data;
        var variant = new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = [0.2, 0.1] };
        var settings = new PurifierSettings(Steps: 2, Lambda: 1);
        var natural = new AttackSpec { Name = "natural", Kind = AttackKind.None, Target = AttackTarget.Blind };
        var bpda = new AttackSpec { Name = "bpda", Kind = AttackKind.Pgd, Target = AttackTarget.BpdaMean, Epsilon = 0.05, Iterations = 2, Eot = 2,
                                    RandomStart = false };
        var full = bpda with { Name = "full", Target = AttackTarget.Full };
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = n, BatchSize = n, Runs = 2, Seeds = [3], Resubmissions = 1, SanityUnbounded = false,
            Purifier = settings, Variant = variant, Attacks = [natural, bpda, full],
        };
        string dir = Directory.CreateTempSubdirectory("adp-variant-").FullName;
        var eval = new RobustEvaluation(cfg, data, clf, score, CPU, dir);
        Assert.True(eval.Run());

        var x = data.Images(0, n, CPU);
        long[] idx = [0, 1, 2, 3];
        PerImageSource Stream(AttackSpec a, params long[] purpose) => PerImageSource.For(3, idx, [a.StreamId(), .. purpose]);
        int[] Correct(Tensor images, AttackSpec a)
        {
            using var o = new DefendedClassifier(clf, new ReinjectionPurifier(score, settings, [0.2, 0.1]), 2).Classify(images, Stream(a, 2, 0));
            return o.Predict(DecisionRule.MeanSoftmax).eq(labels).to(ScalarType.Int32).data<int>().ToArray();
        }
        Assert.Equal(Correct(x, natural), eval.Progress.Cells[EvaluationProgress.CellKey(natural, 3)].Correct["MeanSoftmax"][0]);
        var threat = new ThreatModel(Norm.Linf, 0.05, 0.0125, 2, 1, false, AttackLoss.CrossEntropy, 3);
        foreach (var (spec, model, adpModel) in new (AttackSpec, IAttackModel, IAttackModel)[]
                 {
                     (bpda, new BpdaEotModel(clf, new ReinjectionPurifier(score, settings, [0.2, 0.1]), 2, BpdaAggregation.Mean, score),
                      new BpdaEotModel(clf, new AdaptiveStepPurifier(score, settings), 2, BpdaAggregation.Mean, score)),
                     (full, new FullGradientEotModel(clf, new DifferentiableReinjection(score, settings, [0.2, 0.1]), 2),
                      new FullGradientEotModel(clf, new DifferentiablePurifier(score, settings), 2)),
                 })
        {
            var expected = new Pgd(threat).Perturb(model, x, labels, Stream(spec, 1));
            var (stored, _, _, _) = AdversarialSet.Read(RobustEvaluation.AdversarialPath(dir, spec, 3));
            Assert.True(stored.allclose(expected, rtol: 0, atol: 1e-6), spec.Label);
            Assert.Equal(Correct(expected, spec), eval.Progress.Cells[EvaluationProgress.CellKey(spec, 3)].Correct["MeanSoftmax"][0]);
            var throughAdp = new Pgd(threat).Perturb(adpModel, x, labels, Stream(spec, 1));
            Assert.False(throughAdp.allclose(expected, rtol: 0, atol: 1e-6), $"{spec.Label}: the variant must make a difference here");
        }
        Assert.Contains("reinject sigmas=0.2/0.1", RobustEvaluation.ConfigFingerprint(cfg, "t", "c", "s")["purifier"]);
        // Sharded and merged: the variant is kept (config and fingerprint) and the outcomes are the unsharded run's.
        var merged = ShardAndMerge(cfg, data, clf, score, "adp-variant");
        Assert.Equal(cfg.Variant.Key, merged.Config.Variant?.Key);
        Assert.Equal(RobustEvaluation.ConfigFingerprint(cfg, "t", "c", "s")["purifier"], merged.Progress.Fingerprint["purifier"]);
        foreach (var spec in new[] { natural, bpda, full })
        {
            CellState a = eval.Progress.Cells[EvaluationProgress.CellKey(spec, 3)], b = merged.Progress.Cells[EvaluationProgress.CellKey(spec, 3)];
            var pos = b.Positions();
            foreach (var (rule, lists) in a.Correct) Assert.Equal(lists[0], a.Indices.Select(i => b.Correct[rule][0][pos[i]]));
        }

        // The defense's classification (per-run outcomes) and AutoAttack's clean pass run the variant too: the variant here is
        // the identity (σ 0 → 0, no steps) and ADP at these settings is loud (σ 1), so both differ from ADP's, and both match
        // the independent computation.
        var loud = new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = [0.0, 0.0] };
        var quiet = new PurifierSettings(Sigma: 1.0, Steps: 0);
        var skipping = new AttackSpec { Name = "skip", Kind = AttackKind.Pgd, Target = AttackTarget.Blind, Epsilon = 0.01, Iterations = 1,
                                        SkipMisclassified = true };
        var loudCfg = cfg with { Purifier = quiet, Variant = loud, Runs = 3, Attacks = [natural, skipping] };
        var loudEval = new RobustEvaluation(loudCfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-variant-loud-").FullName);
        Assert.True(loudEval.Run());
        IPurifier Loud() => new ReinjectionPurifier(score, quiet, [0.0, 0.0]);
        IPurifier Adp() => new AdaptiveStepPurifier(score, quiet);
        int[] RunsCorrect(IPurifier p)
        {
            using var o = new DefendedClassifier(clf, p, 3).Classify(x, Stream(natural, 2, 0));
            return o.RunPredictions().eq(labels.view(1, -1)).sum(dim: 0).to(ScalarType.Int32).data<int>().ToArray();
        }
        Assert.Equal(RunsCorrect(Loud()), loudEval.Progress.Cells[EvaluationProgress.CellKey(natural, 3)].RunsCorrect);
        Assert.NotEqual(RunsCorrect(Adp()), RunsCorrect(Loud()));
        long[] Skipped(IPurifier p)
        {
            using var o = new DefendedClassifier(clf, p, 3).Classify(x, PerImageSource.For(3, idx, RobustEvaluation.SkipCheckPurpose));
            var ok = loudCfg.Rules.Select(rule => o.Predict(rule).eq(labels)).Aggregate((a, b) => a.logical_or(b)).data<bool>().ToArray();
            return idx.Where((_, j) => !ok[j]).ToArray();
        }
        Assert.Equal(Skipped(Loud()), loudEval.Progress.Cells[EvaluationProgress.CellKey(skipping, 3)].Skipped.Select(i => (long)i).Order());
        Assert.NotEqual(Skipped(Adp()), Skipped(Loud()));
    }

    /// <summary>ADP's fingerprint and written configuration are what they were before variants could be evaluated (folders
    /// written then resume), whether the variant is absent or named adp; a variant is written and read back.</summary>
    [Fact]
    public void Variant_AdpKeepsTheEarlierFingerprintAndConfig_AndAVariantRoundTrips()
    {
        var cfg = new RobustConfig { Classifier = "c", Score = "s", Purifier = new PurifierSettings(Sigma: 0.15, Steps: 20, Lambda: 1) };
        string Fp(RobustConfig c) => RobustEvaluation.ConfigFingerprint(c, "t", "c", "s")["purifier"];
        Assert.Equal(cfg.Purifier.Describe(), Fp(cfg));
        Assert.Equal(Fp(cfg), Fp(cfg with { Variant = PurifierVariant.Adp }));
        Assert.Equal("ADP " + cfg.Purifier.Describe(), cfg.DescribePurifier());
        var json = System.Text.Encoding.UTF8.GetString(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(cfg, RobustConfig.Json));
        Assert.DoesNotContain("Variant", json);

        var reinject = cfg with { Variant = new PurifierVariant { Kind = PurifierKind.Reinject, ReinjectSigmas = [0.15, 0.15] } };
        Assert.NotEqual(Fp(cfg), Fp(reinject));
        // Re-injection does not read the settings' σ: two configurations differing only there are the same defense.
        Assert.Equal(Fp(reinject), Fp(reinject with { Purifier = reinject.Purifier with { Sigma = 0.3 } }));
        var path = Path.Combine(Directory.CreateTempSubdirectory("adp-variant-json-").FullName, "config.json");
        File.WriteAllBytes(path, System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(reinject, RobustConfig.Json));
        var text = File.ReadAllText(path);
        Assert.Contains("\"Kind\": \"Reinject\"", text);
        Assert.DoesNotContain("UsesSteps", text);  // computed properties are not written
        var back = RobustConfig.Load(path);
        Assert.Equal(reinject.Variant!.Key, back.Variant!.Key);
        Assert.Equal(Fp(reinject), Fp(back));
        // A steps curve needs ADP steps; Tweedie takes none.
        var e = Assert.Throws<AdpException>(() => (cfg with { Variant = new PurifierVariant { Kind = PurifierKind.Tweedie }, StepsCurve = [0, 5],
                                                             Attacks = [new AttackSpec { Kind = AttackKind.None }] }).Validate());
        Assert.StartsWith("--steps-curve", e.Message);
    }

    [Fact]
    public void BareCells_RunBeforeDefendedOnes_SoAStopAfterAStoredDefendedBatchLeavesNoCheapCellBehind()
    {
        var (clf, score, data, _) = HalfRight(8);
        var defendedPgd = new AttackSpec { Name = "bpda", Kind = AttackKind.Pgd, Target = AttackTarget.Bpda, Iterations = 1, Eot = 1, RandomStart = false };
        var barePgd = new AttackSpec { Name = "bare pgd", Kind = AttackKind.Pgd, Target = AttackTarget.Bare, Iterations = 2, Epsilon = 0.1 };
        var cfg = new RobustConfig
        {
            Classifier = "c", Score = "s", Images = 8, BatchSize = 4, Runs = 1, Seeds = [0],
            Purifier = new PurifierSettings(Steps: 1),
            // Configured order: defended, bare, defended, bare cascade on the bare PGD; then the sanity attack (bare) last.
            Attacks = [new AttackSpec { Name = "natural", Kind = AttackKind.None, Target = AttackTarget.Blind }, barePgd, defendedPgd,
                       barePgd with { Name = "bare apgd", Kind = AttackKind.Apgd, After = "bare pgd" }],
        };
        var specs = cfg.AllAttacks();
        Assert.Equal(5, specs.Count);
        Assert.Equal(AttackTarget.Bare, specs[^1].Target);   // the sanity attack

        var order = new List<string>();
        var whole = new RobustEvaluation(cfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-order-").FullName);
        Assert.True(whole.Run((stage, _, _, _) => { if (order.LastOrDefault() != stage) order.Add(stage); }));
        // Bare cells first, each group in configured order (the cascade after its earlier attack); written out, not derived.
        string[] expected = ["bare pgd", "bare apgd", specs[^1].Label, "natural", "bpda"];
        Assert.Equal(expected.Select(l => $"{l} seed 0"), order);

        // A stop right after the first stored defended batch (what a queue drain does): every bare cell is complete.
        using var cts = new CancellationTokenSource();
        var stopped = new RobustEvaluation(cfg, data, clf, score, CPU, Directory.CreateTempSubdirectory("adp-order-stop-").FullName);
        Assert.False(stopped.Run((stage, _, _, _) => { if (stage.StartsWith("natural")) cts.Cancel(); }, cts.Token));
        foreach (var spec in specs)
        {
            var cell = stopped.Progress.Cells[EvaluationProgress.CellKey(spec, 0)];
            Assert.Equal(spec.EvaluatesDefense ? (spec.Kind == AttackKind.None ? 4 : 0) : 8, cell.Indices.Count);
            if (!spec.EvaluatesDefense)   // the same outcomes as the uninterrupted run
                Assert.Equal(whole.Progress.Cells[EvaluationProgress.CellKey(spec, 0)].Correct[RobustEvaluation.BareRule],
                             cell.Correct[RobustEvaluation.BareRule]);
        }
    }
}
