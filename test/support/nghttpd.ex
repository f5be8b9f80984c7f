defmodule H2Flow.Test.Nghttpd do
  @moduledoc false
  # nghttpd (Debian nghttp2-server) for the client's tests: started on a free port, h2c or TLS
  # (a throwaway certificate written as PEM), with a docroot; stopped when the test ends.

  import ExUnit.Assertions

  @doc """
  Starts nghttpd serving `docroot`; `:tls` (default false) and `:args` (more flags). Returns
  `{url, cacerts}` (`cacerts` is nil over h2c).
  """
  def start!(docroot, opts \\ []) do
    exe = System.find_executable("nghttpd") || flunk("nghttpd is not on PATH")
    port = free_port()
    tls? = Keyword.get(opts, :tls, false)

    {tls_args, cacerts} =
      if tls? do
        tls = H2Flow.TLS.self_signed(["localhost"])
        {:ECPrivateKey, _} = key = tls[:key]
        key_path = Path.join(docroot, "../key.pem") |> Path.expand()
        cert_path = Path.join(docroot, "../cert.pem") |> Path.expand()
        File.write!(key_path, :public_key.pem_encode([Tuple.append(key, :not_encrypted)]))

        File.write!(
          cert_path,
          :public_key.pem_encode([{:Certificate, tls[:cert], :not_encrypted}])
        )

        {[key_path, cert_path], tls[:cacerts]}
      else
        {["--no-tls"], nil}
      end

    args =
      ["-a", "127.0.0.1", "-d", docroot] ++
        Keyword.get(opts, :args, []) ++ [Integer.to_string(port)] ++ tls_args

    port_ref =
      Port.open({:spawn_executable, exe}, [:binary, :exit_status, :stderr_to_stdout, args: args])

    {:os_pid, os_pid} = Port.info(port_ref, :os_pid)
    ExUnit.Callbacks.on_exit(fn -> System.cmd("kill", [Integer.to_string(os_pid)]) end)
    await_listening(port, 100)
    host = if tls?, do: "https://localhost", else: "http://127.0.0.1"
    {"#{host}:#{port}", cacerts}
  end

  defp free_port do
    {:ok, sock} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(sock)
    :gen_tcp.close(sock)
    port
  end

  defp await_listening(port, 0), do: flunk("nghttpd is not listening on #{port}")

  defp await_listening(port, tries) do
    case :gen_tcp.connect({127, 0, 0, 1}, port, [], 100) do
      {:ok, sock} ->
        :gen_tcp.close(sock)

      {:error, _} ->
        Process.sleep(50)
        await_listening(port, tries - 1)
    end
  end

  @doc "Writes the first `n` bytes of the client tests' pattern to `path`."
  def write_pattern!(path, n) do
    File.open!(path, [:write, :raw, :binary], fn f ->
      n |> H2Flow.Test.ClientHelpers.pattern() |> Enum.each(&IO.binwrite(f, &1))
    end)
  end
end
