defmodule H2Flow.Interop.FirefoxTest do
  # Firefox ESR, headless, against the demo over h2 (TLS, ALPN): the certificate of
  # H2Flow.TLS.self_signed/1 validated by NSS, its CA imported into a fresh profile with
  # certutil (no exception, no acceptInsecureCerts); then the demo page's concurrent-streams
  # experiment, as test/h2flow/browser_test.exs runs it in Chromium: 300 fetches of
  # /slow?ms=1000 against a limit of 100 and of 300, the server counting the peak in flight.
  use ExUnit.Case, async: false

  alias H2Flow.Demo
  alias H2Flow.Test.{Firefox, Interop}

  @moduletag :interop
  @moduletag :tmp_dir
  @moduletag timeout: 180_000

  @n 300

  setup %{tmp_dir: dir} do
    tls = H2Flow.TLS.self_signed(["localhost", "127.0.0.1"])
    ca = Path.join(dir, "ca.pem")
    File.write!(ca, H2Flow.TLS.ca_pem(tls))
    %{browser: start_supervised!({Firefox, ca: ca}), tls: tls}
  end

  defp start_demo(tls, opts) do
    {:ok, demo} = Demo.start([port: 0, tls_port: 0, ip: {127, 0, 0, 1}, tls: tls] ++ opts)
    on_exit(fn -> Demo.stop(demo) end)
    demo
  end

  # Resolves when the page sets data-done (a MutationObserver: no polling), with what it shows.
  @await_done """
  return new Promise((resolve) => {
    const check = () => {
      if (document.body && document.body.dataset.done === "1") resolve({
        href: location.href,
        error: document.body.dataset.error || null,
        status: document.getElementById("status").textContent,
        summary: document.getElementById("summary").textContent,
      });
    };
    new MutationObserver(check).observe(document,
      {attributes: true, subtree: true, attributeFilter: ["data-done"]});
    check();
  });
  """

  # Opens `path` of the demo and waits (bounded) until the page has run what it was asked to.
  defp run_page(browser, demo, path, timeout \\ 60_000) do
    url = "https://127.0.0.1:#{Demo.port(demo, :tls)}#{path}"
    Firefox.command!(browser, "WebDriver:SetTimeouts", %{script: timeout, pageLoad: timeout})

    case Firefox.command(browser, "WebDriver:Navigate", %{url: url}, timeout + 5_000) do
      {:ok, _} ->
        :ok

      {:error, error} ->
        flunk("navigation to #{url} failed: #{inspect(error)}\n" <> cert_error(browser))
    end

    page =
      try do
        Firefox.command!(
          browser,
          "WebDriver:ExecuteScript",
          %{script: @await_done, args: []},
          timeout + 5_000
        )
      catch
        :exit, {:timeout, _} ->
          flunk("the page did not finish within #{timeout} ms\n" <> Firefox.log(browser))
      end

    assert %{"value" => %{"href" => ^url, "error" => nil} = page} = page
    page
  end

  # What Firefox's certificate error page says (the NSS error code), after a failed navigation.
  defp cert_error(browser) do
    script =
      "try { return document.getFailedCertSecurityInfo().errorCodeString } catch (e) { return String(e) }"

    case Firefox.command(browser, "WebDriver:ExecuteScript", %{script: script, args: []}) do
      {:ok, %{"value" => code}} -> "Firefox's certificate error: #{code}"
      other -> inspect(other)
    end
  end

  defp concurrency_run(browser, tls, limit) do
    demo = start_demo(tls, max_concurrent_streams: limit)

    {{ms, page}, log} =
      Interop.capture(demo.tls, fn ->
        Interop.timed(fn -> run_page(browser, demo, "/?autorun=1&n=#{@n}&ms=1000") end)
      end)

    report = Demo.last_report(demo, "slow")

    assert %{"completed" => @n, "failed" => 0, "protocol" => "h2", "advertised_limit" => ^limit} =
             report

    assert %{in_flight: 0, slow_started: @n, slow_completed: @n, peak_in_flight: peak} =
             Demo.counters(demo)

    assert page["status"] == "#{@n} of #{@n} done, 0 failed"
    # One connection carried the fetches (the page's polls and reports may use another).
    assert Demo.slow_per_connection(demo) == [@n]
    # HTTP/2 connections only: a socket Firefox opened speculatively may still be in its TLS
    # handshake, with no engine stats yet.
    live = for %{protocol: :http2} = stats <- H2Flow.stats(demo.tls, :connections), do: stats
    assert [main] = Enum.filter(live, &(&1.streams_opened >= @n))
    stats = Interop.assert_clean!(demo.tls, log)
    assert stats.streams_reset_by_peer == 0

    Interop.report(
      "Firefox, max_concurrent_streams #{limit}: peak in flight #{peak}, #{report["completed"]}/#{@n} " <>
        "in #{report["duration_ms"]} ms (page run #{ms} ms), #{length(live)} live connections"
    )

    {peak, main}
  end

  test "the CA from H2Flow.TLS.ca_pem/1, imported with certutil, makes NSS accept the certificate",
       %{browser: browser, tls: tls} do
    demo = start_demo(tls, [])
    url = "https://localhost:#{Demo.port(demo, :tls)}/stats"

    case Firefox.command(browser, "WebDriver:Navigate", %{url: url}, 30_000) do
      {:ok, _} -> :ok
      {:error, error} -> flunk("#{error["error"]}: " <> cert_error(browser))
    end

    script = "return [location.protocol, document.body.textContent.length]"

    assert %{"value" => ["https:", length]} =
             Firefox.command!(browser, "WebDriver:ExecuteScript", %{script: script, args: []})

    assert length > 0
  end

  test "limit 100: the peak in flight is the advertised limit; all 300 fetches complete", %{
    browser: browser,
    tls: tls
  } do
    {peak, main} = concurrency_run(browser, tls, 100)
    assert peak == 100
    assert main.peak_open_streams == 100
  end

  test "limit 300: Firefox opens all 300 streams at once; all 300 fetches complete", %{
    browser: browser,
    tls: tls
  } do
    {peak, main} = concurrency_run(browser, tls, 300)
    # Firefox has no cap of its own below 300 (Chromium stops at 256).
    assert peak == 300
    assert main.peak_open_streams == 300
  end
end
