defmodule H2Flow.BrowserTest do
  # A real browser against h2flow: Debian's headless Chromium loads the demo page over h2 (TLS,
  # ALPN, the self-signed certificate accepted with --ignore-certificate-errors) and the page
  # runs the experiments itself, as it does for a person. The test reads the outcome on the
  # server: the demo's counters, the report the page POSTs, the connections' engine stats.
  #
  # Not async: 300 requests and a browser want the machine to themselves. CI runs these tests
  # (.ci/run installs chromium); leave them out with `mix test --exclude browser`.
  #
  # Screenshots of the page are checked (PNG, window size) and, with H2FLOW_SCREENSHOTS set to
  # a directory, written there: `H2FLOW_SCREENSHOTS=docs mix test test/h2flow/browser_test.exs`
  # refreshes docs/browser-demo.png and docs/browser-upload.png.
  use ExUnit.Case, async: false

  alias H2Flow.Demo
  alias H2Flow.Test.Chromium

  @moduletag :browser
  @moduletag timeout: 60_000

  @n 300
  @upload_bytes 64 * 1024 * 1024
  @window {1000, 700}

  # @tag disable_http2: true runs Chromium with HTTP/2 off: it speaks HTTP/1.1 over TLS (ALPN).
  setup ctx do
    flags = if ctx[:disable_http2], do: ["--disable-http2"], else: []
    %{browser: start_supervised!({Chromium, window: @window, flags: flags})}
  end

  defp start_demo(opts) do
    # The servers are linked to the test process and go down with it.
    {:ok, demo} = Demo.start([port: 0, tls_port: 0, ip: {127, 0, 0, 1}] ++ opts)
    demo
  end

  # Opens the demo page in a new tab and waits (bounded) until it has run what it was asked to
  # (`data-done` on <body>); returns the tab's session and what the page shows.
  defp run_page(browser, demo, path, timeout \\ 40_000) do
    session = Chromium.new_page!(browser)
    url = "https://127.0.0.1:#{Demo.port(demo, :tls)}#{path}"
    navigation = Chromium.command!(browser, "Page.navigate", %{url: url}, session)
    assert navigation["errorText"] == nil, "navigation failed: #{inspect(navigation)}"
    page = await_done(browser, session, url, System.monotonic_time(:millisecond) + timeout)
    assert page["error"] == nil, "the page failed: #{inspect(page)}"
    {session, page}
  end

  # Resolves when the page sets data-done (a MutationObserver: no polling), with what it shows.
  @await_done """
  new Promise((resolve) => {
    const check = () => {
      if (document.body && document.body.dataset.done === "1") resolve({
        href: location.href,
        error: document.body.dataset.error || null,
        status: document.getElementById("status").textContent,
        summary: document.getElementById("summary").textContent,
      });
    };
    // The document itself: while the page loads it may have no element yet.
    new MutationObserver(check).observe(document,
      {attributes: true, subtree: true, attributeFilter: ["data-done"]});
    check();
  })
  """

  defp await_done(browser, session, url, deadline) do
    params = %{expression: @await_done, awaitPromise: true, returnByValue: true}
    left = max(deadline - System.monotonic_time(:millisecond), 0)

    try do
      Chromium.command(browser, "Runtime.evaluate", params, session, left)
    catch
      :exit, {:timeout, _} ->
        flunk("the page did not finish within the deadline\n" <> Chromium.log(browser))
    else
      {:ok, %{"result" => %{"value" => %{"href" => ^url} = page}}} ->
        page

      # Evaluated in about:blank before the navigation committed: that document, and the
      # evaluation with it, is gone or never finishes; wait in the page itself.
      {:error, %{"message" => "Execution context was destroyed." <> _}} ->
        await_done(browser, session, url, deadline)

      {:ok, %{"result" => %{"value" => %{"href" => "about:blank"}}}} ->
        await_done(browser, session, url, deadline)

      other ->
        flunk("waiting for the page failed: #{inspect(other)}")
    end
  end

  defp screenshot!(browser, session, name) do
    %{"data" => data} =
      Chromium.command!(browser, "Page.captureScreenshot", %{format: "png"}, session)

    png = Base.decode64!(data)
    {width, height} = @window
    # A PNG of the window's size: the signature, then the IHDR chunk with width and height.
    assert <<137, "PNG", 13, 10, 26, 10, _::32, "IHDR", ^width::32, ^height::32, _::binary>> = png

    case System.get_env("H2FLOW_SCREENSHOTS") do
      nil -> :ok
      dir -> File.write!(Path.join(dir, name), png)
    end
  end

  # The engine stats of each live HTTP/2 connection of the demo's TLS server. A socket Chromium
  # opened speculatively may still be in its TLS handshake (protocol nil, no engine stats yet).
  defp connection_stats(demo) do
    for %{protocol: :http2} = stats <- H2Flow.stats(demo.tls, :connections), do: stats
  end

  # 300 fetches of /slow?ms=1000 from the page; the server's peak of requests in flight.
  defp concurrency_run(browser, demo, limit) do
    {session, page} = run_page(browser, demo, "/?autorun=1&n=#{@n}&ms=1000")
    report = Demo.last_report(demo, "slow")

    assert %{"completed" => @n, "failed" => 0, "protocol" => "h2", "advertised_limit" => ^limit} =
             report

    assert %{in_flight: 0, slow_started: @n, slow_completed: @n, peak_in_flight: peak} =
             Demo.counters(demo)

    # All on one connection: the /slow requests came from one client address and port, and
    # one connection carried them (the page's polls of /stats and its reports use a second,
    # uncredentialed one). Sockets Chromium opened speculatively and closed unused carried no
    # stream: the live connections account for every stream the server saw.
    assert Demo.slow_per_connection(demo) == [@n]
    live = connection_stats(demo)
    assert [main] = Enum.filter(live, &(&1.streams_opened >= @n))
    assert Enum.count(live, &(&1.streams_opened > 0)) == 2
    stats = H2Flow.stats(demo.tls)
    assert Enum.sum(Enum.map(live, & &1.streams_opened)) == stats.streams_opened
    # Chromium queued what the limit held back: nothing was refused or reset.
    assert stats.streams_refused == 0 and stats.streams_reset_by_peer == 0
    assert page["status"] == "#{@n} of #{@n} done, 0 failed"
    {session, peak, main}
  end

  test "limit 300: Chromium keeps at most 256 streams open; all 300 fetches complete", %{
    browser: browser
  } do
    demo = start_demo(max_concurrent_streams: 300)
    {_session, peak, main} = concurrency_run(browser, demo, 300)
    # 256 is Chromium's own cap on concurrent streams per connection, below the server's 300.
    assert peak == 256
    assert main.peak_open_streams == 256
  end

  test "limit 100: the peak in flight is the advertised limit; all 300 fetches complete", %{
    browser: browser
  } do
    demo = start_demo(max_concurrent_streams: 100)
    {session, peak, main} = concurrency_run(browser, demo, 100)
    assert peak == 100
    assert main.peak_open_streams == 100
    screenshot!(browser, session, "browser-demo.png")
  end

  @tag disable_http2: true
  test "over HTTP/1.1 (--disable-http2): the page runs its fetches and a 16 MiB upload", %{
    browser: browser
  } do
    demo = start_demo([])
    n = 60
    {_session, page} = run_page(browser, demo, "/?autorun=1&n=#{n}&ms=300&upload=16")
    assert page["status"] == "Uploaded 16 MiB."

    assert %{
             "completed" => ^n,
             "failed" => 0,
             "protocol" => "http/1.1",
             "server_peak_in_flight" => peak,
             "connections_used" => connections
           } = report = Demo.last_report(demo, "slow")

    IO.puts(
      "\n[browser] Chromium over HTTP/1.1: #{n} fetches of /slow?ms=300 in " <>
        "#{report["duration_ms"]} ms, peak #{peak} in flight on #{connections} connections; " <>
        "16 MiB upload in #{Demo.last_report(demo, "upload")["duration_ms"]} ms"
    )

    # One request at a time per connection: Chromium opens at most 6 per host over HTTP/1.1,
    # and spreads the fetches over them.
    assert peak in 2..6
    assert connections in 2..6
    assert %{"ok" => true, "echoed" => 16_777_216} = Demo.last_report(demo, "upload")
    assert %{echo_completed: 1, echo_last_bytes: 16_777_216} = Demo.counters(demo)
    stats = H2Flow.stats(demo.tls)
    assert stats.http2_connections == 0 and stats.streams_opened == 0
    assert stats.requests[:"HTTP/1.1"] >= n + 1
    # The upload's body bytes were held within the HTTP/1.1 engine's bound (plus the reads
    # in flight when it stopped reading).
    assert stats.http1.peak_buffered_bytes <= H2Flow.TestBounds.http1_held()
    assert stats.http1.rejected_total == 0
  end

  # The demo's defaults (a 1 MiB connection window that may double up to 16 MiB when the client
  # drains it within a PING round trip), and the same window held fixed: then the bound is
  # exact, whatever the timing.
  for {label, opts} <- [
        {"the adaptive window", []},
        {"a fixed 1 MiB window", [adaptive_window: false]}
      ] do
    @opts opts
    test "a 64 MiB upload from the page completes; the server buffers within #{label}", %{
      browser: browser
    } do
      demo = start_demo(@opts)
      {session, page} = run_page(browser, demo, "/?upload=64")
      assert page["status"] == "Uploaded 64 MiB."

      assert %{"ok" => true, "bytes" => @upload_bytes, "echoed" => @upload_bytes} =
               report = Demo.last_report(demo, "upload")

      assert %{echo_completed: 1, echo_last_bytes: @upload_bytes} = counters = Demo.counters(demo)

      # The connection that carried the body buffered at most its receive window: bytes are
      # credited back (WINDOW_UPDATE) only once the handler has read them.
      assert [conn] =
               Enum.filter(
                 connection_stats(demo),
                 &(Map.get(&1, :data_bytes_received, 0) >= @upload_bytes)
               )

      assert conn.peak_buffered_bytes in 1..conn.connection_window
      assert counters.echo_largest_read in 1..conn.connection_window
      assert conn.window_update_frames.connection > 0

      if demo.settings.adaptive_window do
        assert conn.connection_window <= demo.settings.max_connection_window
      else
        assert conn.connection_window == demo.settings.initial_connection_window
        assert conn.connection_window_growths == 0
        # One stream carried the body: its window, fixed too, bounds it more tightly.
        assert conn.peak_buffered_bytes <= demo.settings.initial_stream_window
      end

      # What the page showed is what the server measured.
      assert report["peak_buffered_bytes"] == conn.peak_buffered_bytes
      assert report["connection_window"] == conn.connection_window

      unless demo.settings.adaptive_window do
        screenshot!(browser, session, "browser-upload.png")
      end
    end
  end
end
