using Adp.Cli;

namespace Adp.Tests;

public class ProgressReporterTests
{
    [Theory]
    [InlineData(0, "00:00:00")]
    [InlineData(59.4, "00:00:59")]
    [InlineData(3 * 3600 + 7 * 60 + 5, "03:07:05")]
    [InlineData(32 * 3600 + 8 * 60 + 1, "32:08:01")]  // TimeSpan's "hh" would print 08:08:01
    [InlineData(125 * 3600, "125:00:00")]
    public void Duration_KeepsWholeDaysInTheHours(double seconds, string expected) =>
        Assert.Equal(expected, ProgressReporter.Duration(TimeSpan.FromSeconds(seconds)));

    [Theory]
    [InlineData(false, 10L, 10L, false)]  // finished, no signal
    [InlineData(false, 3L, 10L, false)]   // the job ended early by itself (e.g. a training that stopped): not a signal
    [InlineData(true, 3L, 10L, true)]     // the signal cut it short
    [InlineData(true, 10L, 10L, false)]   // the signal arrived after the last iteration: the job is complete
    [InlineData(true, -1L, 10L, true)]    // cancelled before any progress (-1: none reported)
    public void StoppedEarly_OnlyWhenTheSignalCutTheJobShort(bool cancelled, long iteration, long total, bool expected) =>
        Assert.Equal(expected, ProgressReporter.StoppedEarly(cancelled,
            iteration < 0 ? null : new Adp.Training.TrainingProgress(iteration, total, double.NaN, 0)));
}
