defmodule H2Flow.Engine.Options do
  @moduledoc false
  # The engine's options in one table: defaults, validation and the documentation text that
  # H2Flow.Engine and H2Flow render. native/h2flow_core/src/config.rs holds the same defaults.

  @kib 1024
  @mib 1024 * 1024
  @max_window 2_147_483_647

  # {key, default, type, doc}
  @options [
    {:max_concurrent_streams, 100, {:int, 0, 0xFFFF_FFFF},
     "SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced: a stream beyond it is refused with REFUSED_STREAM, the others keep being served."},
    {:initial_stream_window, 256 * @kib, {:int, 0, @max_window},
     "Each stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE)."},
    {:initial_connection_window, 1 * @mib, {:int, 65_535, @max_window},
     "The connection receive window: the most request-body bytes buffered and unread per connection (the memory bound). Raised from 65,535 by one WINDOW_UPDATE after our SETTINGS."},
    {:window_update_threshold, 50, {:int, 1, 100},
     "Credit is released once it reaches this percentage of the window."},
    {:adaptive_window, true, :boolean,
     "Double the windows when the peer drains them within one PING round trip while the application keeps up."},
    {:max_connection_window, 16 * @mib, {:int, 65_535, @max_window},
     "Upper bound of adaptive growth of the connection window."},
    {:max_stream_window, 8 * @mib, {:int, 0, @max_window},
     "Upper bound of adaptive growth of stream windows."},
    {:max_frame_size, 16_384, {:int, 16_384, 16_777_215},
     "SETTINGS_MAX_FRAME_SIZE advertised: the largest frame accepted."},
    {:header_table_size, 4096, {:int, 0, 0xFFFF_FFFF},
     "SETTINGS_HEADER_TABLE_SIZE advertised: the HPACK table the peer may use."},
    {:max_header_list_size, 64 * @kib, {:int, 1, 0xFFFF_FFFF},
     "SETTINGS_MAX_HEADER_LIST_SIZE, enforced while decoding (HPACK bomb, CVE-2016-6581); a larger request is answered 431."},
    {:max_send_queue, 64 * @kib, {:int, 1, 0xFFFF_FFFF},
     "Queued, unsent response bytes per stream before the sender must wait."},
    {:max_continuation_frames, 16, {:int, 0, 0xFFFF_FFFF},
     "CONTINUATION frames allowed in one header block (CVE-2024-27316); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_header_block_size, 64 * @kib, {:int, 1, 0xFFFF_FFFF},
     "Compressed bytes allowed in one header block; beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_pending_acks, 1000, {:int, 1, 0xFFFF_FFFF},
     "PING and SETTINGS acknowledgements owed between two flushes (CVE-2019-9512, 9515); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_settings_entries, 32, {:int, 1, 0xFFFF_FFFF},
     "Parameters allowed in one SETTINGS frame; beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:peer_reset_rate, {1000, 500}, :rate,
     "`{burst, per_second}` of RST_STREAM frames the peer may send on open streams (Rapid Reset, CVE-2023-44487); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:empty_data_rate, {100, 10}, :rate,
     "`{burst, per_second}` of empty DATA frames without END_STREAM (CVE-2019-9518)."},
    {:refused_stream_rate, {100, 10}, :rate,
     "`{burst, per_second}` of streams refused over the limit after the peer acknowledged it; beyond: GOAWAY ENHANCE_YOUR_CALM that lets accepted streams finish."},
    {:local_reset_rate, {200, 50}, :rate,
     "`{burst, per_second}` of RST_STREAM frames the peer's errors may cause (CVE-2019-9514)."},
    {:settings_timeout, 10_000, {:int, 1, 0xFFFF_FFFF},
     "Milliseconds our SETTINGS may stay unacknowledged (SETTINGS_TIMEOUT)."},
    {:closed_stream_memory, 1024, {:int, 1, 0xFFFF_FFFF},
     "Closed streams remembered to tell late frames from errors (at least 4 × max_concurrent_streams)."}
  ]

  @keys Enum.map(@options, &elem(&1, 0))

  @doc false
  def keys, do: @keys

  @doc false
  def defaults, do: Map.new(@options, fn {k, d, _, _} -> {k, d} end)

  @doc false
  def docs do
    Enum.map_join(@options, "\n", fn {key, default, _, doc} ->
      "  * `#{inspect(key)}` (default `#{inspect(default, pretty: true)}`): #{doc}"
    end)
  end

  @doc false
  # Validates a keyword list of engine options; returns the complete map the NIF expects.
  def validate!(opts) when is_list(opts) do
    Enum.reduce(opts, defaults(), fn
      {key, value}, acc when is_atom(key) ->
        case List.keyfind(@options, key, 0) do
          nil -> raise ArgumentError, "unknown engine option #{inspect(key)}"
          {^key, _, type, _} -> Map.put(acc, key, check!(key, type, value))
        end

      other, _acc ->
        raise ArgumentError, "engine options must be a keyword list, got: #{inspect(other)}"
    end)
  end

  defp check!(_key, {:int, min, max}, v) when is_integer(v) and v >= min and v <= max, do: v
  defp check!(_key, :boolean, v) when is_boolean(v), do: v

  defp check!(_key, :rate, {burst, per_second} = v)
       when is_integer(burst) and burst > 0 and is_integer(per_second) and per_second >= 0 and
              burst <= 0xFFFF_FFFF and per_second <= 0xFFFF_FFFF,
       do: v

  defp check!(key, {:int, min, max}, v),
    do:
      raise(
        ArgumentError,
        "#{inspect(key)} must be an integer in #{min}..#{max}, got: #{inspect(v)}"
      )

  defp check!(key, :boolean, v),
    do: raise(ArgumentError, "#{inspect(key)} must be a boolean, got: #{inspect(v)}")

  defp check!(key, :rate, v),
    do:
      raise(
        ArgumentError,
        "#{inspect(key)} must be {burst, per_second} integers, got: #{inspect(v)}"
      )
end
