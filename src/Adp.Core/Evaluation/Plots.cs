using ScottPlot;

namespace Adp.Evaluation;

/// <summary>PNG figures for reports (ScottPlot).</summary>
public static class Plots
{
    public static void ConfusionMatrix(CleanResult r, string path, string title)
    {
        int k = r.ClassNames.Count;
        var data = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            long row = 0;
            for (int j = 0; j < k; j++) row += r.Confusion[i, j];
            for (int j = 0; j < k; j++) data[i, j] = row == 0 ? 0 : (double)r.Confusion[i, j] / row;
        }
        var plot = new Plot();
        var hm = plot.Add.Heatmap(data);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(hm);
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                var t = plot.Add.Text(r.Confusion[i, j].ToString(), j, k - 1 - i);
                t.LabelFontSize = 10;
                t.LabelAlignment = Alignment.MiddleCenter;
                t.LabelFontColor = data[i, j] > 0.5 ? Colors.Black : Colors.White;
            }
        var ticks = Enumerable.Range(0, k).Select(i => new Tick(i, r.ClassNames[i])).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks);
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, k).Select(i => new Tick(k - 1 - i, r.ClassNames[i])).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.Label.Text = "predicted";
        plot.Axes.Left.Label.Text = "true";
        plot.Title(title);
        SavePng(plot, path, 800, 700);
    }

    /// <summary>Renders to PNG bytes and writes them atomically (<see cref="IO.AtomicFile"/>).</summary>
    public static void SavePng(Plot plot, string path, int width, int height) =>
        IO.AtomicFile.Write(path, plot.GetImageBytes(width, height, ImageFormat.Png));
}
