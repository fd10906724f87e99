using Adp.Data;
using static TorchSharp.torch;

namespace Adp.Evaluation;

public sealed record CleanResult(string Data, int Images, long Correct, long[,] Confusion, IReadOnlyList<string> ClassNames)
{
    public double Accuracy => (double)Correct / Images;
    public (double Low, double High) Interval => Statistics.Wilson(Correct, Images);

    public double ClassAccuracy(int c)
    {
        long total = 0;
        for (int j = 0; j < Confusion.GetLength(1); j++) total += Confusion[c, j];
        return total == 0 ? double.NaN : (double)Confusion[c, c] / total;
    }
}

/// <summary>Test accuracy of a bare classifier, with its confusion matrix (rows: true class, columns: predicted).</summary>
public static class CleanEvaluation
{
    public static CleanResult Run(nn.Module<Tensor, Tensor> classifier, ImageDataset data, int batchSize, Device device)
    {
        classifier.eval();
        int k = data.Spec.ClassNames.Count;
        var confusion = new long[k, k];
        long correct = 0;
        using var _ = no_grad();
        for (int start = 0; start < data.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(batchSize, data.Count - start);
            var pred = classifier.forward(data.Images(start, n, device)).argmax(1).cpu().data<long>().ToArray();
            var truth = data.Labels.narrow(0, start, n).data<long>().ToArray();
            for (int i = 0; i < n; i++)
            {
                confusion[truth[i], pred[i]]++;
                if (truth[i] == pred[i]) correct++;
            }
        }
        return new CleanResult(data.Description, data.Count, correct, confusion, data.Spec.ClassNames);
    }
}
